/**
 * PATCH /cvms/{id}/envs and what follows a 202, as the real service behaves:
 *
 * - the payload must decrypt with the CVM's env key (else 422, nothing stored);
 * - the new compose is the current one with `allowed_envs = env_keys`; a value-only change or a
 *   Phala-KMS CVM is accepted at once;
 * - on-chain KMS with changed keys: phase 1 (no hash/tx) answers 465 with the hash to register;
 *   phase 2 must present that pending hash (466 if unknown, expired, or the compose moved since)
 *   and a transaction that registered it on the app contract (467), still allowed there (468);
 * - one operation per CVM at a time (409);
 * - after a 202 the CVM is in progress until the apply delay passes, then runs with the new env
 *   (decrypted values filtered by `allowed_envs`, as the guest does) and the operation completes.
 */
import { randomUUID } from 'node:crypto';
import { decryptEnvVars, EnvCryptoError } from '../phala/env-crypto.ts';
import { ENV_KEY_PATTERN, EnvValidationError, validateEnvVars } from '../phala/env-validation.ts';
import type { EnvVar } from '../phala/dotenv.ts';
import { ChainRpcError, type ChainVerifier } from './chain-verifier.ts';
import { allowedEnvsOf, composeHash, sameKeySet, withAllowedEnvs, type AppCompose } from './compose.ts';
import type { BehaviourConfig } from './config.ts';
import { bodyIssue, detailError, DOCS_LINK, ERROR_CODES, structuredError, validationError, type ValidationIssue } from './errors.ts';
import type { Faults } from './faults.ts';
import type { CvmRecord, OperationRecord, Workspace } from './state.ts';
import { renderKmsInfo } from './views.ts';

export interface EnvsDeps {
  ws: Workspace;
  behaviour: () => BehaviourConfig;
  verifier: ChainVerifier | null;
  faults: Faults;
  /** CVMs with a PATCH being handled right now (the chain checks are async). */
  busy: Set<string>;
  schedule: (cvm: CvmRecord) => void;
  now: () => number;
  log: (line: string) => void;
}

export interface UpdateEnvsBody {
  encrypted_env: string;
  env_keys: string[] | null;
  compose_hash: string | null;
  transaction_hash: string | null;
}

export const OPERATION_TYPE = 'compose_update';
export const UPDATING_STATUS = 'starting';

const HASH_RE = /^(0x)?[0-9a-fA-F]{64}$/;
/** Pending phase-1 hashes kept per CVM; older ones are forgotten (their phase 2 gets 466). */
const MAX_PENDING = 16;
const MAX_OPERATIONS = 200;

function optionalString(body: Record<string, unknown>, field: string, issues: ValidationIssue[]): string | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') {
    issues.push(bodyIssue(field, 'Input should be a valid string', 'string_type'));
    return null;
  }
  return v === '' ? null : v;
}

/** FastAPI-style validation of the request body. */
export function parseUpdateEnvsBody(body: unknown): UpdateEnvsBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw validationError([{ loc: ['body'], msg: 'Input should be a valid dictionary', type: 'dict_type' }]);
  }
  const b = body as Record<string, unknown>;
  const issues: ValidationIssue[] = [];
  let encrypted = '';
  if (b.encrypted_env === undefined) issues.push(bodyIssue('encrypted_env', 'Field required', 'missing'));
  else if (typeof b.encrypted_env !== 'string') issues.push(bodyIssue('encrypted_env', 'Input should be a valid string', 'string_type'));
  else encrypted = b.encrypted_env;

  let envKeys: string[] | null = null;
  if (b.env_keys !== undefined && b.env_keys !== null) {
    if (!Array.isArray(b.env_keys)) {
      issues.push(bodyIssue('env_keys', 'Input should be a valid list', 'list_type'));
    } else {
      envKeys = [];
      b.env_keys.forEach((k: unknown, i) => {
        if (typeof k !== 'string') issues.push(bodyIssue(['env_keys', i], 'Input should be a valid string', 'string_type'));
        else if (!ENV_KEY_PATTERN.test(k) || Buffer.byteLength(k) > 255) {
          issues.push(bodyIssue(['env_keys', i], 'Invalid environment variable name', 'value_error'));
        } else if (!envKeys!.includes(k)) envKeys!.push(k);
      });
    }
  }
  const composeHashIn = optionalString(b, 'compose_hash', issues);
  const txHash = optionalString(b, 'transaction_hash', issues);
  if (composeHashIn !== null && !HASH_RE.test(composeHashIn)) {
    issues.push(bodyIssue('compose_hash', 'compose_hash must be a 32-byte hex string', 'value_error'));
  }
  if (txHash !== null && !HASH_RE.test(txHash)) {
    issues.push(bodyIssue('transaction_hash', 'transaction_hash must be a 32-byte hex string', 'value_error'));
  }
  if ((composeHashIn === null) !== (txHash === null) && issues.length === 0) {
    const missing = composeHashIn === null ? 'compose_hash' : 'transaction_hash';
    issues.push(bodyIssue(missing, 'compose_hash and transaction_hash must be given together (phase 2)', 'value_error'));
  }
  if (issues.length > 0) throw validationError(issues);
  return { encrypted_env: encrypted, env_keys: envKeys, compose_hash: composeHashIn, transaction_hash: txHash };
}

const norm = (hex: string) => hex.replace(/^0x/i, '').toLowerCase();

export async function patchEnvs(deps: EnvsDeps, cvm: CvmRecord, rawBody: unknown): Promise<Record<string, unknown>> {
  const body = parseUpdateEnvsBody(rawBody);
  if (cvm.inFlight !== null || deps.busy.has(cvm.id)) {
    throw detailError(409, 'Another operation is in progress for this CVM; retry when it has finished');
  }
  deps.busy.add(cvm.id);
  try {
    return await handle(deps, cvm, body);
  } finally {
    deps.busy.delete(cvm.id);
  }
}

async function handle(deps: EnvsDeps, cvm: CvmRecord, body: UpdateEnvsBody): Promise<Record<string, unknown>> {
  const { ws } = deps;
  const behaviour = deps.behaviour();
  try {
    await decryptEnvVars(body.encrypted_env, cvm.envPrivateKey);
  } catch (err) {
    if (err instanceof EnvCryptoError) {
      throw validationError([bodyIssue('encrypted_env', `encrypted_env cannot be decrypted with this CVM's env key: ${err.message}`)]);
    }
    throw err;
  }

  const current = allowedEnvsOf(cvm.compose);
  const requested = body.env_keys ?? current;
  const changed = !sameKeySet(requested, current);
  let newCompose = changed ? withAllowedEnvs(cvm.compose, requested) : cvm.compose;
  if (changed && behaviour.composeDrift) newCompose = { ...newCompose, public_logs: newCompose.public_logs !== true };
  const app = ws.appOf(cvm);
  const kms = ws.kmsOf(app);

  if (!changed || kms.kind === 'phala') return accept(deps, cvm, body.encrypted_env, newCompose, changed);

  const mode = behaviour.composeSerialization;
  const newHash = composeHash(newCompose, mode);
  if (body.compose_hash === null || body.transaction_hash === null) {
    const now = deps.now();
    const ttl = cvm.overrides.pendingTtlMs ?? behaviour.pendingTtlMs;
    cvm.pending = [
      { composeHash: newHash, compose: newCompose, baseComposeHash: composeHash(cvm.compose, mode), createdAt: now, expiresAt: now + ttl },
      ...cvm.pending.filter((p) => p.composeHash !== newHash && p.expiresAt >= now),
    ].slice(0, MAX_PENDING);
    ws.save();
    throw structuredError({
      status: 465,
      errorCode: ERROR_CODES.HASH_REGISTRATION_REQUIRED,
      message: 'Compose hash registration required: the allowed env keys changed on a CVM with on-chain KMS',
      details: [
        { field: 'compose_hash', value: newHash },
        { field: 'app_id', value: cvm.appId },
        { field: 'device_id', value: cvm.deviceId },
        { field: 'kms_info', value: renderKmsInfo(kms) },
      ],
      suggestions: [
        'Call addComposeHash(compose_hash) on the app contract (address = app_id)',
        'Then repeat this request with compose_hash and transaction_hash',
      ],
      links: [DOCS_LINK],
    });
  }

  const given = norm(body.compose_hash);
  const pending = cvm.pending.find((p) => p.composeHash === given);
  const hashInvalid = (reason: string) =>
    structuredError({
      status: 466,
      errorCode: ERROR_CODES.HASH_INVALID_OR_EXPIRED,
      message: `Compose hash invalid or expired: ${reason}`,
      details: [{ field: 'compose_hash', value: body.compose_hash, message: reason }],
      suggestions: ['Start again from phase 1: repeat the request without compose_hash and transaction_hash'],
      links: [DOCS_LINK],
    });
  const forget = () => {
    cvm.pending = cvm.pending.filter((p) => p.composeHash !== given);
    ws.save();
  };
  if (pending === undefined) throw hashInvalid('it is not a compose hash pending for this CVM');
  if (deps.now() > pending.expiresAt) {
    forget();
    throw hashInvalid('the pending compose hash has expired');
  }
  if (composeHash(cvm.compose, mode) !== pending.baseComposeHash) {
    forget();
    throw hashInvalid('the CVM compose file changed since the compose hash was issued');
  }
  if (newHash !== given) {
    throw hashInvalid('env_keys differ from the request that produced this compose hash');
  }

  const txFailed = (reason: string) =>
    structuredError({
      status: 467,
      errorCode: ERROR_CODES.TX_VERIFICATION_FAILED,
      message: `Transaction verification failed: ${reason}`,
      details: [{ field: 'transaction_hash', value: body.transaction_hash, message: reason }],
      suggestions: ['If the transaction was sent recently, wait until it is mined and retry the same request'],
      links: [DOCS_LINK],
    });
  if (deps.faults.takePhase2Lag(cvm.id)) throw txFailed('transaction receipt not found (not mined yet, or unknown to our RPC node)');
  if (deps.verifier === null) throw detailError(500, 'On-chain verification is unavailable: no RPC endpoint is configured for this KMS');
  let verdict;
  try {
    verdict = await deps.verifier.verify({
      appId: cvm.appId,
      composeHash: given,
      txHash: body.transaction_hash.startsWith('0x') ? body.transaction_hash : `0x${body.transaction_hash}`,
      requiredConfirmations: behaviour.requiredConfirmations,
      txMustTargetApp: behaviour.txMustTargetApp,
    });
  } catch (err) {
    if (err instanceof ChainRpcError) {
      deps.log(`phase 2 for ${cvm.id}: ${err.message}`);
      throw detailError(500, 'RPC error while verifying the transaction; retry later');
    }
    throw err;
  }
  if (!verdict.ok && verdict.status === 467) throw txFailed(verdict.reason);
  if (!verdict.ok) {
    throw structuredError({
      status: 468,
      errorCode: ERROR_CODES.HASH_NOT_ALLOWED,
      message: `Compose hash not allowed on-chain: ${verdict.reason}`,
      details: [
        { field: 'compose_hash', value: given },
        { field: 'app_id', value: cvm.appId },
      ],
      suggestions: ['Register the compose hash again with addComposeHash, then retry phase 2 with the new transaction'],
      links: [DOCS_LINK],
    });
  }
  // The CVM may have been touched while the chain was read (admin calls): re-check before committing.
  if (cvm.inFlight !== null) throw detailError(409, 'Another operation is in progress for this CVM; retry when it has finished');
  cvm.pending = cvm.pending.filter((p) => p.composeHash !== given);
  return accept(deps, cvm, body.encrypted_env, pending.compose, true);
}

function accept(
  deps: EnvsDeps,
  cvm: CvmRecord,
  encryptedEnv: string,
  compose: AppCompose,
  allowedEnvsChanged: boolean,
): Record<string, unknown> {
  const behaviour = deps.behaviour();
  const now = deps.now();
  const startedAt = new Date(now).toISOString();
  const correlationId = randomUUID();
  cvm.inFlight = {
    correlationId,
    target: 'running',
    startedAt,
    applyAt: now + (cvm.overrides.applyDelayMs ?? behaviour.applyDelayMs),
    encryptedEnv,
    compose,
    allowedEnvsChanged,
  };
  cvm.status = UPDATING_STATUS;
  const op: OperationRecord = {
    correlationId,
    operationType: OPERATION_TYPE,
    targetState: 'running',
    startedAt,
    completedAt: null,
    status: 'in_progress',
    errorMessage: null,
    composeHash: composeHash(compose, behaviour.composeSerialization),
    events: [{ event_type: `instance.${OPERATION_TYPE}.start`, timestamp: startedAt, state: 'running' }],
  };
  cvm.operations.unshift(op);
  // Bounded like any history the backend pages through; old records are of no use to a simulator.
  cvm.operations.length = Math.min(cvm.operations.length, MAX_OPERATIONS);
  deps.ws.save();
  deps.schedule(cvm);
  return {
    status: 'in_progress',
    message: 'Environment variables update initiated',
    correlation_id: correlationId,
    allowed_envs_changed: allowedEnvsChanged,
  };
}

/**
 * Finishes the CVM's in-flight update: the guest restarts with the new compose and env. An env
 * the guest would reject fails the operation and leaves the previous env and compose in place.
 */
export async function applyInFlight(
  ws: Workspace,
  cvm: CvmRecord,
  now: number,
  /** The KMS's boot check (on-chain KMS only): null to boot, else why the KMS refuses. */
  bootRefusal?: (cvm: CvmRecord, compose: AppCompose) => Promise<string | null>,
): Promise<void> {
  const flight = cvm.inFlight;
  if (flight === null) return;
  const at = new Date(now).toISOString();
  const op = cvm.operations.find((o) => o.correlationId === flight.correlationId);
  let failure: string | null = null;
  // Only a restart with a new compose is checked: CVMs the simulator creates were never
  // provisioned on chain with their first compose hash (dstack's deployAndRegisterApp takes one),
  // so a value-only update would be refused for a reason the real service never has.
  if (bootRefusal && flight.allowedEnvsChanged) {
    let refused: string | null;
    try {
      refused = await bootRefusal(cvm, flight.compose);
    } catch (err) {
      refused = `the KMS could not read the chain (${(err as Error).message.split('\n')[0]!.slice(0, 160)})`;
    }
    // The guest restarts and the KMS refuses its keys: the CVM keeps running the old env.
    if (refused !== null) failure = `boot refused by the KMS: ${refused}`;
  }
  if (failure === null)
    try {
      const env: EnvVar[] = await decryptEnvVars(flight.encryptedEnv, cvm.envPrivateKey);
      validateEnvVars(env);
    } catch (err) {
      if (err instanceof EnvValidationError) failure = `the guest rejected the env vars: ${err.issues.map((i) => i.message).join('; ')}`;
      else if (err instanceof EnvCryptoError) failure = `the guest could not decrypt the env vars: ${err.message}`;
      else throw err;
    }
  if (failure === null) {
    cvm.compose = flight.compose;
    cvm.applied = { encryptedEnv: flight.encryptedEnv, correlationId: flight.correlationId, appliedAt: at };
    cvm.bootedAt = at;
  }
  cvm.inFlight = null;
  cvm.status = 'running';
  if (op) {
    op.completedAt = at;
    op.status = failure === null ? 'completed' : 'failed';
    op.errorMessage = failure;
    op.events.push({
      event_type: `instance.${OPERATION_TYPE}.${failure === null ? 'complete' : 'failed'}`,
      timestamp: at,
      state: 'running',
    });
  }
  ws.save();
}

/** The env the guest runs with: decrypted values whose keys the compose allows. */
export async function appliedEnv(cvm: CvmRecord): Promise<{ env: EnvVar[]; droppedKeys: string[] }> {
  if (cvm.applied.encryptedEnv === null) return { env: [], droppedKeys: [] };
  const all = await decryptEnvVars(cvm.applied.encryptedEnv, cvm.envPrivateKey);
  const allowed = new Set(allowedEnvsOf(cvm.compose));
  return {
    env: all.filter((e) => allowed.has(e.key)),
    droppedKeys: all.filter((e) => !allowed.has(e.key)).map((e) => e.key),
  };
}
