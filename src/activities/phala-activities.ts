import { heartbeat, log, sleep, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/activity';
import type { PhalaCloudClient } from '../phala/api-client.ts';
import { PhalaApiError } from '../phala/api-errors.ts';
import type { CvmOperation } from '../phala/api-schemas.ts';
import { assessRequestedComposeHash } from '../phala/compose-hash-check.ts';
import { x25519 } from '@noble/curves/ed25519.js';
import { EnvCryptoError, encryptEnvVars } from '../phala/env-crypto.ts';
import { ENV_KEY_PATTERN, EnvValidationError, validateEnvVars } from '../phala/env-validation.ts';
import { checkEnvEncryptPublicKey, KmsSignatureError } from '../phala/kms-signature.ts';
import { FAILURE } from '../failure-types.ts';
import type { ComposeHashPolicy, EnvVar } from '../workflows/definitions.ts';
import { apiFailure, invalidInput } from './failures.ts';
import { readSealedEnvHere, sealEnvelope } from './sealed-env-reader.ts';
import { SealedEnvCache } from './sealed-env-cache.ts';
import type { SealedEnvRef } from '../workflows/sealed-env.ts';
import { trustedKmsKey, type KmsKeyPins, type OnChainKmsKey } from './kms-trust.ts';
import type {
  ApplyObservation,
  ComposeHashCheck,
  CvmTarget,
  EncryptionKey,
  SubmitEnvInput,
  SubmitEnvOutcome,
  ValidatedInput,
} from './types.ts';

export interface PhalaActivityDeps {
  phala: PhalaCloudClient;
  /** The longest pause between two polls of the apply watcher (it starts shorter: see applyPollDelayMs). */
  pollIntervalMs?: number;
  /** Oldest KMS signature on an env-encryption key that is still trusted. */
  kmsSignatureMaxAgeSeconds?: number;
  /** The k256 key a KMS contract publishes (kmsInfo), or why it cannot be had (no RPC for the chain, no key). */
  kmsKeyOnChain?: (chainId: number, kmsContract: string) => Promise<OnChainKmsKey>;
  /** KMS_PUBLIC_KEYS: the key to hold the API's KMS key to when the contract cannot be read. */
  kmsKeyPins?: KmsKeyPins;
  /** KMS_TRUST_API_KEY: with neither the contract nor a pin, use the API's key (a warning) instead of refusing. */
  trustApiKmsKey?: boolean;
  /** How long an accepted operation may be missing from an idle CVM's operations before an operator is asked (APPLY_UNLISTED_GRACE_SECONDS). */
  unlistedOperationGraceMs?: number;
  /** Reads a sealed env back from the run's history; by default through the worker's client. */
  readSealedEnv?: (ref: SealedEnvRef) => Promise<string>;
  /** What this worker sealed, for its own submits; one per factory by default. */
  sealedEnvCache?: SealedEnvCache;
}

const ONCHAIN_KMS_TYPES = new Set(['ethereum', 'base']);

function normaliseAppId(appId: string): string {
  return /^(0x)?[0-9a-fA-F]{40}$/.test(appId) ? `0x${appId.replace(/^0x/, '').toLowerCase()}` : appId;
}

/** The first pauses of the apply watcher; the pause then grows with the time already waited. */
export const APPLY_POLL_MIN_MS = 150;
/** Pause as a share of the time waited so far: the time lost to polling stays under this share. */
export const APPLY_POLL_FRACTION = 1 / 8;

/**
 * The pause before the next apply poll, `elapsedMs` after the watcher started: short at first
 * (an apply often lands within a second or two, and a fixed 1 s tick lost ~0.5 s of it on
 * average), then a fixed share of the time waited, capped at `maxMs`. A long apply costs about
 * as many requests as fixed `maxMs` polling plus a few dozen early ones.
 */
export function applyPollDelayMs(elapsedMs: number, maxMs: number): number {
  const min = Math.min(APPLY_POLL_MIN_MS, maxMs);
  return Math.round(Math.min(maxMs, Math.max(min, elapsedMs * APPLY_POLL_FRACTION)));
}

/**
 * The env encryption key as served, checked before it is trusted or used: an x25519 public key
 * is 32 bytes, and an all-zero or low-order point would make the shared secret predictable.
 * A bad key fails the same way on every fetch, so it ends the step at once.
 */
export function servedEnvKey(key: unknown, servedBy: string): string {
  const problem = envKeyProblem(key);
  if (problem) throw ApplicationFailure.nonRetryable(`${servedBy} served an unusable env encryption key: ${problem}`, FAILURE.ApiRejected);
  return key as string;
}

function envKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'not a string';
  const hex = key.replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]*$/.test(hex)) return 'not hex';
  if (hex.length !== 64) return `must be 32 bytes (64 hex characters), got ${hex.length > 1000 ? 'more than 1000' : hex.length} characters`;
  try {
    // The shared secret with a fixed scalar: zero for every low-order point.
    x25519.getSharedSecret(PROBE_SCALAR, Buffer.from(hex, 'hex'));
  } catch {
    return 'a low-order x25519 point';
  }
  return undefined;
}

const PROBE_SCALAR = new Uint8Array(32).fill(7);

function toEnvList(env: unknown): EnvVar[] {
  if (Array.isArray(env)) return env as EnvVar[];
  if (env !== null && typeof env === 'object') {
    return Object.entries(env as Record<string, unknown>).map(([key, value]) => {
      if (typeof value !== 'string') throw invalidInput(`env.${ENV_KEY_PATTERN.test(key) ? key : '<invalid key>'} must be a string`);
      return { key, value };
    });
  }
  throw invalidInput('env must be an object of KEY: value or a list of {key, value}');
}

const OPERATION_PAGE_SIZE = 100;
const OPERATION_PAGES = 10;
/** How far the API's clock may run behind Temporal's when an earlier attempt's operation is looked for. */
const ACCEPTED_EARLIER_SKEW_MS = 2_000;
/** Operation types an env update shows up as (the API records it as a compose update). */
const ENV_OPERATION = /compose|env/i;

/**
 * An error of the apply watch. The API has already accepted the change, so nothing here ends
 * it: a 404 or a malformed answer from the operations endpoint is retried with backoff like a
 * 5xx, and when the retries run out the update waits for an operator. Auth stays as it is
 * (retrying a revoked key helps nobody), still not final.
 */
function watchFailure(err: unknown, what: string): unknown {
  if (err instanceof PhalaApiError && (err.kind === 'not_found' || err.kind === 'bad_response' || err.kind === 'invalid')) {
    return ApplicationFailure.create({
      message: `${what}: ${err.status ?? 'no response'} ${err.kind}: ${err.message}`,
      type: FAILURE.ApplyWatchFailed,
    });
  }
  if (err instanceof PhalaApiError && err.kind === 'auth') {
    return ApplicationFailure.nonRetryable(`${what}: ${err.status} auth: ${err.message}`, FAILURE.ApplyWatchDenied);
  }
  return apiFailure(err, what);
}

/**
 * The env encrypted to the CVM's key. The same key fails the same way on every attempt: final.
 * The message names the key's problem only; an env value never appears in an EnvCryptoError about the key.
 */
async function encryptOrFail(env: EnvVar[], publicKey: string): Promise<string> {
  try {
    return await encryptEnvVars(env, publicKey);
  } catch (err) {
    if (err instanceof EnvCryptoError && (err.code === 'invalid_public_key' || err.code === 'weak_shared_secret')) {
      throw ApplicationFailure.nonRetryable(`the env encryption key cannot be used: ${err.message}`, FAILURE.ApiRejected);
    }
    if (err instanceof EnvCryptoError) throw invalidInput(`env: ${err.message}`);
    throw err;
  }
}

export function createPhalaActivities(deps: PhalaActivityDeps) {
  const { phala } = deps;
  const unlistedGraceMs = deps.unlistedOperationGraceMs ?? 120_000;
  const pollIntervalMs = deps.pollIntervalMs ?? 1000;
  const sealedCache = deps.sealedEnvCache ?? new SealedEnvCache();
  // The workflow watches an apply in slices of one activity each; keeping when the watch of a
  // correlation id began lets a later slice go on at the long pause instead of starting short
  // again. In memory only: a slice on another worker just starts short once more.
  const watchStartedAt = new Map<string, number>();
  const watchStart = (correlationId: string, now: number): number => {
    for (const [id, at] of watchStartedAt) if (now - at > 3_600_000) watchStartedAt.delete(id);
    const at = watchStartedAt.get(correlationId) ?? now;
    watchStartedAt.set(correlationId, at);
    return at;
  };

  /** The KMS key that may vouch for an env key: see kms-trust.ts for the rules. */
  async function kmsKeyFor(target: CvmTarget): Promise<string> {
    const chainId = target.chainId;
    const contract =
      target.kmsContract ??
      (
        await phala.getCvm(target.cvmId).catch((err) => {
          throw apiFailure(err, `GET /cvms/${target.cvmId}`);
        })
      ).kms_info?.dstack_kms_address?.toLowerCase() ??
      undefined;
    const onChain: OnChainKmsKey =
      chainId === undefined
        ? { missing: "the KMS's chain is not known" }
        : !contract
          ? { missing: `the CVM names no KMS contract on chain ${chainId}` }
          : deps.kmsKeyOnChain
            ? await deps.kmsKeyOnChain(chainId, contract)
            : { missing: 'the worker reads no chain' };
    return trustedKmsKey({ apiKey: target.kmsPublicKey!, kmsId: target.kmsId, chainId, contract, onChain }, deps);
  }

  /**
   * A 465 names the app and chain to register on; both must be the CVM's own. A registration
   * on another app (or chain) would spend gas, allow a hash where nobody asked for it, and
   * never satisfy phase 2. The API contradicting its own CVM record is final.
   */
  async function checkPreconditionTarget(cvmId: string, asked: { appId: string; chainId?: number | undefined }): Promise<void> {
    const cvm = await phala.getCvm(cvmId).catch((err) => {
      throw apiFailure(err, `GET /cvms/${cvmId}`);
    });
    const recordApp = normaliseAppId(cvm.app_id ?? cvm.kms_info?.dstack_app_address ?? '');
    if (recordApp !== '' && asked.appId.toLowerCase() !== recordApp.toLowerCase()) {
      throw ApplicationFailure.nonRetryable(
        `phase 1 asked to register on app ${asked.appId}, but CVM ${cvmId} belongs to app ${recordApp}: refusing to register on another app`,
        FAILURE.ApiRejected,
      );
    }
    const recordChain = cvm.kms_info?.chain_id ?? undefined;
    if (recordChain !== undefined && asked.chainId !== undefined && asked.chainId !== recordChain) {
      throw ApplicationFailure.nonRetryable(
        `phase 1 asked to register on chain ${asked.chainId}, but the KMS of CVM ${cvmId} is on chain ${recordChain}: refusing to register on another chain`,
        FAILURE.ApiRejected,
      );
    }
  }

  /**
   * The operation by its correlation id, paging back through the CVM's operations (newest
   * first). Stops at the first page whose oldest operation started before the watch could have
   * begun, or after OPERATION_PAGES pages.
   */
  async function findOperation(cvmId: string, correlationId: string): Promise<CvmOperation | undefined> {
    let cursor: string | undefined;
    for (let page = 0; page < OPERATION_PAGES; page++) {
      const ops = await phala.getCvmOperations(cvmId, { limit: OPERATION_PAGE_SIZE, ...(cursor ? { cursor } : {}) }).catch((err) => {
        throw watchFailure(err, `GET /cvms/${cvmId}/operations`);
      });
      const op = ops.items.find((o) => o.correlation_id === correlationId);
      if (op) return op;
      if (!ops.next_cursor || ops.items.length === 0) return undefined;
      cursor = ops.next_cursor;
    }
    return undefined;
  }

  /**
   * The operation an earlier attempt of this very submit started, if any. The API has no
   * idempotency key for PATCH /envs (X-Request-ID only correlates logs): when a 202 is lost
   * (connection closed, worker killed, timeout) the retry would apply the same ciphertext a
   * second time, and after a lost phase-2 202 it would get 466 and go through phase 1 again.
   * So a retry first looks for an env operation of this CVM that started after the first
   * attempt was scheduled (and, in phase 2, for the same compose hash). Only one update
   * workflow runs per CVM, so such an operation is ours unless someone changed the CVM's env
   * by hand in those seconds; the first attempt has nothing to find and sends at once.
   */
  async function acceptedByEarlierAttempt(input: SubmitEnvInput): Promise<CvmOperation | undefined> {
    let info: { attempt: number; scheduledTimestampMs: number };
    try {
      info = Context.current().info;
    } catch {
      return undefined; // called outside an activity (direct use): there is no earlier attempt
    }
    if (info.attempt <= 1) return undefined;
    const since = info.scheduledTimestampMs - ACCEPTED_EARLIER_SKEW_MS;
    const hash = input.composeHash?.replace(/^0x/, '').toLowerCase();
    const ops = await phala.getCvmOperations(input.cvmId, { limit: OPERATION_PAGE_SIZE }).catch((err) => {
      throw apiFailure(err, `GET /cvms/${input.cvmId}/operations`);
    });
    return ops.items.find((op) => {
      const started = Date.parse(op.started_at);
      if (!(started >= since) || !ENV_OPERATION.test(op.operation_type)) return false;
      const opHash = op.compose_hash?.replace(/^0x/, '').toLowerCase();
      return hash === undefined || opHash === undefined || opHash === hash;
    });
  }

  return {
    async validateInput(input: { env: unknown; allowedKeys?: unknown }): Promise<ValidatedInput> {
      const env = toEnvList(input.env);
      try {
        validateEnvVars(env);
      } catch (err) {
        if (err instanceof EnvValidationError) throw invalidInput(`env: ${err.message}`);
        throw err;
      }
      if (env.length === 0) throw invalidInput('env: at least one variable is required');
      let envKeys = env.map((e) => e.key);
      if (input.allowedKeys !== undefined) {
        if (!Array.isArray(input.allowedKeys) || input.allowedKeys.some((k) => typeof k !== 'string')) {
          throw invalidInput('allowedKeys must be a list of env names');
        }
        const allowed = input.allowedKeys as string[];
        const bad = allowed.filter((k) => !ENV_KEY_PATTERN.test(k));
        if (bad.length > 0)
          throw invalidInput(
            `allowedKeys: ${bad.length} name(s) are not valid env names (${bad.map((k) => JSON.stringify(k.slice(0, 32))).join(', ')})`,
          );
        // The guest silently drops keys outside allowed_envs: refuse instead of losing them.
        const missing = envKeys.filter((k) => !allowed.includes(k));
        if (missing.length > 0) throw invalidInput(`allowedKeys must include every env key; missing: ${missing.join(', ')}`);
        envKeys = [...new Set(allowed)];
      }
      return { env, envKeys };
    },

    /** A rollout's `targets: {appId}`: the ids of every CVM of the app, in the API's order. */
    async listAppCvms({ appId }: { appId: string }): Promise<{ cvmIds: string[] }> {
      if (typeof appId !== 'string' || !/^(0x)?[0-9a-fA-F]{40}$/.test(appId)) {
        throw invalidInput('targets.appId must be an app id: 40 hex characters, optionally 0x-prefixed');
      }
      const cvms = await phala.listAppCvms(appId).catch((err) => {
        throw apiFailure(err, `GET /apps/${appId}/cvms`);
      });
      return { cvmIds: cvms.map((c) => c.id) };
    },

    async resolveCvm({ cvmId }: { cvmId: string }): Promise<CvmTarget> {
      if (typeof cvmId !== 'string' || cvmId.trim() === '') throw invalidInput('cvmId is required');
      const cvm = await phala.getCvm(cvmId).catch((err) => {
        throw apiFailure(err, `GET /cvms/${cvmId}`);
      });
      const kmsType = cvm.kms_type ?? 'phala';
      const onchain = ONCHAIN_KMS_TYPES.has(kmsType);
      const appId = normaliseAppId(cvm.app_id ?? cvm.kms_info?.dstack_app_address ?? '');
      if (!appId) throw ApplicationFailure.nonRetryable(`CVM ${cvmId} has no app id`, FAILURE.ApiRejected);
      const target: CvmTarget = {
        cvmId: cvm.id,
        name: cvm.name,
        appId,
        kms: onchain ? 'onchain' : 'phala',
        kmsType,
        chainId: cvm.kms_info?.chain_id ?? undefined,
        encryptedEnvPubkey: cvm.kms_info?.encrypted_env_pubkey ?? undefined,
        composeHash: cvm.compose_hash ?? undefined,
      };
      if (onchain) {
        // The CVM names its KMS by contract address; the pubkey endpoint wants the KMS id or slug.
        const kmsAddress = cvm.kms_info?.dstack_kms_address?.toLowerCase();
        const list = await phala.listKms({ isOnchain: true }).catch((err) => {
          throw apiFailure(err, 'GET /kms');
        });
        const kms = list.items.find(
          (k) => k.kms_contract_address?.toLowerCase() === kmsAddress && (target.chainId === undefined || k.chain_id === target.chainId),
        );
        if (!kms) {
          throw ApplicationFailure.nonRetryable(
            `no KMS listed for contract ${kmsAddress ?? '(none)'} on chain ${target.chainId}`,
            FAILURE.KmsNotFound,
          );
        }
        target.kmsId = kms.slug ?? kms.id;
        if (kmsAddress) target.kmsContract = kmsAddress;
        target.kmsPublicKey = kms.k256_pubkey ?? undefined;
        target.chainId ??= kms.chain_id ?? undefined;
      }
      return target;
    },

    async getEncryptionKey(target: CvmTarget): Promise<EncryptionKey> {
      if (target.kms === 'phala') {
        if (!target.encryptedEnvPubkey) {
          throw ApplicationFailure.nonRetryable(`CVM ${target.cvmId} exposes no env encryption key`, FAILURE.ApiRejected);
        }
        return { publicKey: servedEnvKey(target.encryptedEnvPubkey, `the CVM record of ${target.cvmId}`), source: 'cvm-record' };
      }
      const res = await phala.getAppEnvEncryptPubkey(target.kmsId!, target.appId).catch((err) => {
        throw apiFailure(err, `GET /kms/${target.kmsId}/pubkey/${target.appId}`);
      });
      if (!target.kmsPublicKey) {
        throw ApplicationFailure.nonRetryable(
          `KMS ${target.kmsId} publishes no k256_pubkey: the env key cannot be verified`,
          FAILURE.KeyNotTrusted,
        );
      }
      const kmsPublicKey = await kmsKeyFor(target);
      // Prefer the timestamped signature: it cannot be replayed once it expires.
      const timestamped = res.signature_v1 && res.timestamp != null;
      const publicKey = servedEnvKey(res.public_key, `KMS ${target.kmsId}`);
      let check: ReturnType<typeof checkEnvEncryptPublicKey>;
      try {
        check = checkEnvEncryptPublicKey({
          publicKey,
          signature: timestamped ? res.signature_v1! : res.signature,
          appId: target.appId,
          kmsPublicKey,
          timestamp: timestamped ? res.timestamp! : undefined,
          maxAgeSeconds: deps.kmsSignatureMaxAgeSeconds,
        });
      } catch (err) {
        // A signature or KMS key that is not even well-formed will be just as malformed on
        // the next fetch: the API broke its contract, so no retry can help.
        if (err instanceof KmsSignatureError) {
          throw ApplicationFailure.nonRetryable(
            `KMS ${target.kmsId} served an unusable signature for the env encryption key of app ${target.appId}: ${err.message}`,
            FAILURE.ApiRejected,
          );
        }
        throw err;
      }
      if (!check.ok) {
        // A fresh fetch may carry a fresh signature: retry a few times before an operator looks.
        throw ApplicationFailure.create({
          message: `the env encryption key for app ${target.appId} is not signed by KMS ${target.kmsId}: ${check.reason}`,
          type: FAILURE.KeyNotTrusted,
          nonRetryable: check.reason !== 'expired',
        });
      }
      return { publicKey, source: 'kms-signed' };
    },

    async encryptEnv({ env, publicKey }: { env: EnvVar[]; publicKey: string }): Promise<{ encryptedEnv: string }> {
      return { encryptedEnv: await encryptOrFail(env, publicKey) };
    },

    /** The ciphertext as binary with its digest in front (workflows/sealed-env.ts): in history once. */
    async sealEnv({ env, publicKey }: { env: EnvVar[]; publicKey: string }): Promise<Uint8Array> {
      const sealed = sealEnvelope(Buffer.from(await encryptOrFail(env, publicKey), 'hex'));
      sealedCache.remember(sealed);
      return sealed;
    },

    async submitEnvUpdate(input: SubmitEnvInput): Promise<SubmitEnvOutcome> {
      const phase = input.transactionHash ? 'phase 2' : 'phase 1';
      const earlier = await acceptedByEarlierAttempt(input);
      if (earlier) {
        log.info('an earlier attempt of this submit was accepted (its answer was lost): following its operation', {
          cvmId: input.cvmId,
          phase,
          correlationId: earlier.correlation_id,
        });
        return { kind: 'in_progress', correlationId: earlier.correlation_id, allowedEnvsChanged: input.transactionHash !== undefined };
      }
      const ref = input.sealedEnv;
      const encryptedEnv = ref ? (sealedCache.recall(ref) ?? (await (deps.readSealedEnv ?? readSealedEnvHere)(ref))) : input.encryptedEnv;
      if (!encryptedEnv) throw invalidInput(`${phase}: no encrypted env was given`);
      try {
        const res = await phala.updateCvmEnvs(
          {
            id: input.cvmId,
            encrypted_env: encryptedEnv,
            env_keys: input.envKeys,
            ...(input.composeHash ? { compose_hash: input.composeHash } : {}),
            ...(input.transactionHash ? { transaction_hash: input.transactionHash } : {}),
          },
          { requestId: input.requestId },
        );
        if (res.status === 'in_progress') {
          return { kind: 'in_progress', correlationId: res.correlation_id, allowedEnvsChanged: res.allowed_envs_changed };
        }
        const asked = {
          kind: 'precondition_required' as const,
          composeHash: res.compose_hash.replace(/^0x/, '').toLowerCase(),
          appId: normaliseAppId(res.app_id),
          deviceId: res.device_id || undefined,
          chainId: res.kms_info.chain_id ?? undefined,
          kmsId: res.kms_info.slug ?? res.kms_info.id,
        };
        await checkPreconditionTarget(input.cvmId, asked);
        return asked;
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        if (
          err instanceof PhalaApiError &&
          (err.kind === 'hash_expired' || err.kind === 'tx_not_verified' || err.kind === 'hash_not_allowed')
        ) {
          return { kind: err.kind, message: err.message };
        }
        throw apiFailure(err, `${phase} PATCH /cvms/${input.cvmId}/envs`);
      }
    },

    async checkComposeHash(input: {
      cvmId: string;
      envKeys: string[];
      expected: string;
      policy: ComposeHashPolicy;
    }): Promise<ComposeHashCheck> {
      const expected = input.expected.replace(/^0x/, '').toLowerCase();
      if (input.policy === 'off') return { policy: 'off', expected, matches: true, detail: 'not checked (policy off)' };
      const [compose, cvm] = await Promise.all([
        phala.getComposeFile(input.cvmId).catch((err) => {
          throw apiFailure(err, `GET /cvms/${input.cvmId}/compose_file`);
        }),
        phala.getCvm(input.cvmId).catch((err) => {
          throw apiFailure(err, `GET /cvms/${input.cvmId}`);
        }),
      ]);
      const assessment = assessRequestedComposeHash({
        current: compose as Record<string, unknown>,
        currentHash: cvm.compose_hash,
        allowedKeys: input.envKeys,
        requested: expected,
      });
      const verified = assessment.verdict === 'verified';
      if (!verified) {
        log.warn('compose hash not reproduced from the served compose', {
          cvmId: input.cvmId,
          expected,
          verdict: assessment.verdict,
          policy: input.policy,
        });
      }
      return {
        policy: input.policy,
        expected,
        ...(assessment.computed === undefined ? {} : { computed: assessment.computed }),
        // The workflow stops for an operator only when this is false under strict.
        matches: verified,
        detail: `${assessment.verdict}: ${assessment.detail}`,
      };
    },

    async observeApplied(input: { cvmId: string; correlationId: string; maxWaitMs: number }): Promise<ApplyObservation> {
      const deadline = Date.now() + input.maxWaitMs;
      const started = watchStart(input.correlationId, Date.now());
      const settled = (obs: ApplyObservation): ApplyObservation => {
        watchStartedAt.delete(input.correlationId);
        return obs;
      };
      let detail = 'not seen yet';
      for (;;) {
        const op = await findOperation(input.cvmId, input.correlationId);
        if (op) {
          const s = op.status.toLowerCase();
          if (['completed', 'succeeded', 'success', 'done'].includes(s)) return settled({ state: 'applied' });
          if (['failed', 'error', 'cancelled', 'canceled'].includes(s)) {
            return settled({ state: 'failed', message: op.error_message ?? `operation ${input.correlationId} ${op.status}` });
          }
          detail = `operation ${op.status}`;
        } else {
          // Not in the CVM's operations at all. An idle CVM says nothing about an operation it
          // does not list: "applied" is never assumed. A CVM still busy with it is waited for;
          // one that stays idle with no record of it goes to an operator after a grace period.
          const cvm = await phala.getCvm(input.cvmId).catch((err) => {
            throw watchFailure(err, `GET /cvms/${input.cvmId}`);
          });
          const ours = cvm.progress?.correlation_id === input.correlationId;
          detail = `operation ${input.correlationId} not listed yet; CVM ${cvm.status}${cvm.in_progress ? ` (in progress${ours ? '' : ', another operation'})` : ''}`;
          if (!cvm.in_progress && Date.now() - started > unlistedGraceMs) {
            watchStartedAt.delete(input.correlationId);
            throw ApplicationFailure.nonRetryable(
              `operation ${input.correlationId} is not among the operations of CVM ${input.cvmId} and the CVM is idle: ` +
                'whether the change was applied is unknown; check the CVM, then retry or abort',
              FAILURE.ApplyUnknown,
            );
          }
        }
        heartbeat(detail);
        const pauseMs = applyPollDelayMs(Date.now() - started, pollIntervalMs);
        if (Date.now() + pauseMs > deadline) return { state: 'pending', detail };
        await sleep(pauseMs);
        if (Context.current().cancellationSignal.aborted) return { state: 'pending', detail };
      }
    },
  };
}
