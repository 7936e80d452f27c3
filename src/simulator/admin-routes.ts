/**
 * The simulator's own control surface under /_sim (admin token only): faults, fresh CVMs for
 * tests, behaviour settings, and inspection of the env a CVM actually runs with.
 */
import { getAddress } from 'viem';
import { readAppOwner } from './chain-verifier.ts';
import { mergeBehaviour, SettingError, type BehaviourConfig } from './config.ts';
import { detailError, validationError } from './errors.ts';
import { appliedEnv } from './envs-route.ts';
import { FaultInputError, type FaultConfigInput, type Faults } from './faults.ts';
import { createCvm, cvmIdentity, upsertApp } from './seed.ts';
import { normaliseAppId, type CvmRecord, type Workspace } from './state.ts';
import { cvmComposeHash } from './views.ts';
import { allowedEnvsOf } from './compose.ts';
import { ENV_KEY_PATTERN } from '../phala/env-validation.ts';

export interface AdminDeps {
  ws: Workspace;
  faults: Faults;
  behaviour: () => BehaviourConfig;
  setBehaviour: (b: BehaviourConfig) => void;
  rpcUrl: string | null;
  signerAddress: string | null;
  now: () => number;
}

export interface AdminResponse {
  status: number;
  body: unknown;
}

function badRequest(message: string): never {
  throw detailError(400, message);
}

function cvmSummary(ws: Workspace, cvm: CvmRecord, deps: AdminDeps) {
  return {
    ...cvmIdentity(ws, cvm),
    vmUuid: cvm.vmUuid,
    status: cvm.status,
    inProgress: cvm.inFlight !== null,
    composeHash: cvmComposeHash(cvm, deps.behaviour().composeSerialization),
    allowedEnvs: allowedEnvsOf(cvm.compose),
  };
}

async function createTestCvm(deps: AdminDeps, body: Record<string, unknown>): Promise<AdminResponse> {
  const { ws } = deps;
  const kind = body.kms;
  if (kind !== 'onchain' && kind !== 'phala') badRequest('kms must be "onchain" or "phala"');
  const kms = ws.data.kms.find((k) => k.kind === kind);
  if (!kms) badRequest(`the simulator has no ${kind} KMS (no chain configured?)`);
  let allowedEnvs: string[] | undefined;
  if (body.allowed_envs !== undefined) {
    if (!Array.isArray(body.allowed_envs) || !body.allowed_envs.every((k) => typeof k === 'string' && ENV_KEY_PATTERN.test(k))) {
      badRequest('allowed_envs must be an array of env names');
    }
    allowedEnvs = body.allowed_envs as string[];
  }
  let composeExtra: Record<string, unknown> | undefined;
  if (body.compose_extra !== undefined) {
    const extra = body.compose_extra;
    if (extra === null || typeof extra !== 'object' || Array.isArray(extra) || 'allowed_envs' in extra) {
      badRequest('compose_extra must be an object of compose fields other than allowed_envs');
    }
    composeExtra = extra as Record<string, unknown>;
  }
  const overrides: CvmRecord['overrides'] = {};
  for (const [field, key] of [
    ['apply_delay_ms', 'applyDelayMs'],
    ['pending_ttl_ms', 'pendingTtlMs'],
  ] as const) {
    const v = body[field];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) badRequest(`${field} must be a non-negative integer`);
    overrides[key] = v;
  }
  let count: number | undefined;
  if (body.count !== undefined) {
    if (typeof body.count !== 'number' || !Number.isInteger(body.count) || body.count < 1 || body.count > 1000) {
      badRequest('count must be an integer from 1 to 1000');
    }
    count = body.count;
  }
  if (body.name !== undefined && (typeof body.name !== 'string' || !/^[a-zA-Z][a-zA-Z0-9-]{4,62}$/.test(body.name))) {
    badRequest('name must be 5-63 characters: a letter, then letters, digits or hyphens');
  }

  let appIdIn: string | null = null;
  if (body.app_id !== undefined) {
    appIdIn = typeof body.app_id === 'string' ? normaliseAppId(body.app_id) : null;
    if (appIdIn === null) badRequest('app_id must be a 20-byte hex address');
  } else if (kind === 'onchain') {
    badRequest('app_id (the address of a DstackApp contract on the chain) is required for an on-chain CVM');
  }

  let app = appIdIn === null ? undefined : ws.app(appIdIn);
  if (app && ws.kmsOf(app).kind !== kind) badRequest(`app ${appIdIn} already uses the ${ws.kmsOf(app).kind} KMS`);
  if (!app) {
    let owner: string | null = null;
    if (kind === 'onchain') {
      if (deps.rpcUrl === null) badRequest('no RPC endpoint configured to read the app owner');
      owner = getAddress(await readAppOwner(deps.rpcUrl, appIdIn!));
    }
    const ownerIsSigner =
      typeof body.owner_is_signer === 'boolean'
        ? body.owner_is_signer
        : owner !== null && deps.signerAddress !== null && owner.toLowerCase() === deps.signerAddress.toLowerCase();
    app = upsertApp(
      ws,
      {
        name: `app-${appIdIn ?? Math.random().toString(16).slice(2, 10)}`,
        kms: kind,
        ...(appIdIn === null ? {} : { appId: appIdIn }),
        owner,
        ownerIsSigner,
      },
      kms!,
    );
  }
  // `count`: that many replicas of one app at once (same compose), answered as {items}.
  const created: CvmRecord[] = [];
  try {
    for (let i = 0; i < (count ?? 1); i++) {
      created.push(
        createCvm(ws, {
          app,
          ...(typeof body.name === 'string' ? { name: count === undefined ? body.name : `${body.name}-${i + 1}` } : {}),
          ...(allowedEnvs ? { allowedEnvs } : {}),
          ...(composeExtra ? { composeExtra } : {}),
          overrides,
        }),
      );
    }
  } catch (err) {
    throw detailError(409, (err as Error).message);
  }
  ws.save();
  if (count !== undefined) return { status: 201, body: { items: created.map((c) => cvmSummary(ws, c, deps)) } };
  return { status: 201, body: cvmSummary(ws, created[0]!, deps) };
}

export async function handleAdmin(
  deps: AdminDeps,
  method: string,
  path: string,
  query: URLSearchParams,
  body: unknown,
): Promise<AdminResponse> {
  const segs = path.split('/').filter(Boolean);
  const obj = (body ?? {}) as Record<string, unknown>;
  if (body !== undefined && (body === null || typeof body !== 'object' || Array.isArray(body))) {
    throw validationError([{ loc: ['body'], msg: 'Input should be a valid dictionary', type: 'dict_type' }]);
  }
  const key = `${method} /${segs.map((s, i) => (segs[0] === 'cvms' && i === 1 ? '{id}' : s)).join('/')}`;
  const cvmParam = () => {
    const cvm = deps.ws.cvm(decodeURIComponent(segs[1]!));
    if (!cvm) throw detailError(404, 'CVM not found');
    return cvm;
  };
  try {
    switch (key) {
      case 'GET /faults':
        return { status: 200, body: deps.faults.snapshot() };
      case 'POST /faults': {
        if (obj.reset === true || obj.replace === true) deps.faults.remove();
        const added = deps.faults.add(obj as FaultConfigInput);
        return { status: 200, body: { added, ...deps.faults.snapshot() } };
      }
      case 'DELETE /faults': {
        const filter: { id?: string; cvmId?: string } = {};
        const id = query.get('id');
        const cvmId = query.get('cvmId');
        if (id) filter.id = id;
        if (cvmId) filter.cvmId = cvmId;
        return { status: 200, body: { removed: deps.faults.remove(filter), ...deps.faults.snapshot() } };
      }
      case 'GET /cvms':
        return { status: 200, body: { items: deps.ws.data.cvms.map((c) => cvmSummary(deps.ws, c, deps)) } };
      case 'POST /cvms':
        return await createTestCvm(deps, obj);
      case 'GET /cvms/{id}': {
        const cvm = cvmParam();
        return { status: 200, body: cvmSummary(deps.ws, cvm, deps) };
      }
      case 'GET /cvms/{id}/env': {
        const cvm = cvmParam();
        const { env, droppedKeys } = await appliedEnv(cvm);
        return {
          status: 200,
          body: {
            cvm_id: cvm.id,
            env: Object.fromEntries(env.map((e) => [e.key, e.value])),
            keys: env.map((e) => e.key),
            dropped_keys: droppedKeys,
            allowed_envs: allowedEnvsOf(cvm.compose),
            compose_hash: cvmComposeHash(cvm, deps.behaviour().composeSerialization),
            correlation_id: cvm.applied.correlationId,
            applied_at: cvm.applied.appliedAt,
          },
        };
      }
      case 'GET /config':
        return { status: 200, body: deps.behaviour() };
      case 'POST /config':
        deps.setBehaviour(mergeBehaviour(deps.behaviour(), obj));
        return { status: 200, body: deps.behaviour() };
      case 'GET /health':
        return { status: 200, body: { ok: true } };
      default:
        throw detailError(404, 'Not Found');
    }
  } catch (err) {
    if (err instanceof FaultInputError) throw detailError(400, err.message);
    if (err instanceof SettingError) throw detailError(400, err.message);
    throw err;
  }
}
