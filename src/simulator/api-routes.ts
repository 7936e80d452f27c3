/**
 * The public API routes under /api/v1 (everything but PATCH envs' logic, which has its own module).
 */
import { signEnvEncryptPublicKey } from '../phala/kms-signature.ts';
import { servedCompose, serializeCompose } from './compose.ts';
import { kmsIsContractCentric, type ApiVersion, type BehaviourConfig } from './config.ts';
import { detailError, validationError } from './errors.ts';
import { patchEnvs, type EnvsDeps } from './envs-route.ts';
import { deriveAppEnvKeyPair } from './keys.ts';
import type { CvmRecord, Workspace } from './state.ts';
import {
  renderCvmDetail,
  renderCvmState,
  renderCvmStatus,
  renderKmsContract,
  renderKmsInfo,
  renderKmsNode,
  renderOperation,
  type ViewContext,
} from './views.ts';
import { getAddress } from 'viem';
import { ChainRpcError, classifyOwner } from './chain-verifier.ts';

export interface ApiRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  version: ApiVersion;
  /** The CVM addressed by {id}, resolved before the handler runs (404 when unknown). */
  cvm: CvmRecord | undefined;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  /** When set, sent as is with this content type instead of JSON. */
  text?: { contentType: string; value: string };
}

export interface ApiDeps extends EnvsDeps {
  rpcUrl: string | null;
}

export interface RouteDef {
  method: string;
  template: string;
  /** Served without an API key (the OpenAPI lists no auth for the KMS lookups). */
  public?: boolean;
  handler: (deps: ApiDeps, req: ApiRequest) => Promise<ApiResponse> | ApiResponse;
}

function view(deps: ApiDeps): ViewContext {
  return { ws: deps.ws, rpcUrl: deps.rpcUrl, composeSerialization: deps.behaviour().composeSerialization, now: deps.now() };
}

function requireCvm(req: ApiRequest): CvmRecord {
  if (!req.cvm) throw detailError(404, 'CVM not found');
  return req.cvm;
}

function intQuery(query: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n)) {
    throw validationError([{ loc: ['query', name], msg: 'Input should be a valid integer', type: 'int_parsing' }]);
  }
  if (n < min || n > max) {
    throw validationError([
      {
        loc: ['query', name],
        msg: `Input should be ${n < min ? 'greater' : 'less'} than or equal to ${n < min ? min : max}`,
        type: n < min ? 'greater_than_equal' : 'less_than_equal',
      },
    ]);
  }
  return n;
}

function ok(body: unknown, status = 200): ApiResponse {
  return { status, body };
}

function behaviour(deps: ApiDeps): BehaviourConfig {
  return deps.behaviour();
}

function listKms(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const page = intQuery(req.query, 'page', 1, 1, 1_000_000);
  const pageSize = intQuery(req.query, 'page_size', 20, 1, 100);
  const onchain = req.query.get('is_onchain');
  let items = deps.ws.data.kms;
  if (onchain === 'true') items = items.filter((k) => k.kind === 'onchain');
  else if (onchain === 'false') items = items.filter((k) => k.kind === 'phala');
  const total = items.length;
  const slice = items.slice((page - 1) * pageSize, page * pageSize);
  const render = kmsIsContractCentric(req.version) ? renderKmsContract : renderKmsInfo;
  return ok({ items: slice.map(render), total, page, page_size: pageSize, pages: Math.max(1, Math.ceil(total / pageSize)) });
}

function kmsPubkey(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const kms = deps.ws.kmsByRef(req.params.kms_id!);
  if (!kms) throw detailError(404, 'KMS not found');
  const rawAppId = req.params.app_id!;
  const appId = /^(0x)?[0-9a-fA-F]{40}$/.test(rawAppId) ? rawAppId.replace(/^0x/, '').toLowerCase() : null;
  if (appId === null) throw detailError(400, 'Invalid app ID format: expected 40 hex characters, with or without 0x');
  const { publicKey } = deriveAppEnvKeyPair(kms.envKeyRoot, appId);
  const strip = (h: string) => h.replace(/^0x/, '');
  const signature = strip(signEnvEncryptPublicKey({ publicKey, appId, kmsPrivateKey: kms.k256PrivateKey }));
  if (behaviour(deps).pubkeyResponse === 'legacy') return ok({ public_key: publicKey, signature });
  const timestamp = Math.floor(deps.now() / 1000);
  const signatureV1 = strip(signEnvEncryptPublicKey({ publicKey, appId, kmsPrivateKey: kms.k256PrivateKey, timestamp }));
  return ok({ public_key: publicKey, signature, timestamp, signature_v1: signatureV1 });
}

// Safe's EIP-3770 chain prefixes for the chains the on-chain KMS runs on; others get no link.
const SAFE_CHAIN_PREFIX: Record<number, string> = { 1: 'eth', 8453: 'base' };

async function appKmsInfo(deps: ApiDeps, req: ApiRequest): Promise<ApiResponse> {
  const app = deps.ws.app(req.params.app_id!);
  if (!app) throw detailError(404, 'App not found');
  const kms = deps.ws.kmsOf(app);
  const onchain = kms.kind === 'onchain';
  const owner = onchain && app.owner ? getAddress(app.owner) : null;
  let kind: 'eoa' | 'safe' | 'contract' | null = owner ? 'eoa' : null;
  if (owner && deps.rpcUrl) {
    try {
      kind = await classifyOwner(deps.rpcUrl, owner);
    } catch (err) {
      if (err instanceof ChainRpcError) throw detailError(500, err.message);
      throw err;
    }
  }
  const prefix = kms.chainId === null ? undefined : SAFE_CHAIN_PREFIX[kms.chainId];
  return ok({
    is_onchain_kms: onchain,
    chain_id: kms.chainId,
    kms_contract_address: kms.contractAddress,
    app_contract_address: onchain ? getAddress(`0x${app.appId}`) : null,
    deployer_address: owner,
    deployer_type: kind,
    is_contract: kind === 'safe' || kind === 'contract',
    safe_app_url: kind === 'safe' && prefix ? `https://app.safe.global/home?safe=${prefix}:${owner}` : null,
  });
}

/** GET /apps/{app_id}/cvms: every CVM of the app, as the SDK's getAppCvms reads it (a plain array). */
function appCvms(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const app = deps.ws.app(req.params.app_id!);
  if (!app) throw detailError(404, 'App not found');
  const ctx = view(deps);
  return ok(deps.ws.data.cvms.filter((c) => c.appId === app.appId).map((c) => renderCvmDetail(ctx, c, req.version)));
}

function composeFile(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const cvm = requireCvm(req);
  const raw = req.query.get('raw');
  const bytes = serializeCompose(cvm.compose, behaviour(deps).composeSerialization);
  if (raw !== null && raw !== '' && raw !== 'false' && raw !== '0') {
    return { status: 200, body: null, text: { contentType: 'text/plain; charset=utf-8', value: bytes } };
  }
  // Parsed back from the written bytes, unless the writer leaves fields out of the file.
  return ok(servedCompose(cvm.compose, behaviour(deps).composeSerialization));
}

function operations(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const cvm = requireCvm(req);
  const limit = intQuery(req.query, 'limit', 50, 1, 500);
  let offset = 0;
  const cursor = req.query.get('cursor');
  if (cursor) {
    const decoded = /^o(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!decoded) throw validationError([{ loc: ['query', 'cursor'], msg: 'Invalid cursor', type: 'value_error' }]);
    offset = Number(decoded[1]);
  }
  const types = req.query
    .getAll('operation_types')
    .flatMap((t) => t.split(','))
    .filter(Boolean);
  const parseTime = (name: string): number | null => {
    const raw = req.query.get(name);
    if (!raw) return null;
    const t = Date.parse(raw);
    if (Number.isNaN(t))
      throw validationError([{ loc: ['query', name], msg: 'Input should be a valid datetime', type: 'datetime_parsing' }]);
    return t;
  };
  const start = parseTime('start_time');
  const end = parseTime('end_time');
  const all = cvm.operations.filter((op) => {
    const t = Date.parse(op.startedAt);
    return (types.length === 0 || types.includes(op.operationType)) && (start === null || t >= start) && (end === null || t <= end);
  });
  const page = all.slice(offset, offset + limit);
  const next = offset + limit < all.length ? Buffer.from(`o${offset + limit}`).toString('base64url') : null;
  const ctx = view(deps);
  return ok({ items: page.map((op) => renderOperation(ctx, cvm, op)), next_cursor: next, total: all.length });
}

function statusBatch(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const body = req.body as { vm_uuids?: unknown } | null;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw validationError([{ loc: ['body'], msg: 'Input should be a valid dictionary', type: 'dict_type' }]);
  }
  if (!Array.isArray(body.vm_uuids)) {
    throw validationError([
      {
        loc: ['body', 'vm_uuids'],
        msg: body.vm_uuids === undefined ? 'Field required' : 'Input should be a valid list',
        type: body.vm_uuids === undefined ? 'missing' : 'list_type',
      },
    ]);
  }
  const ctx = view(deps);
  const out: Record<string, unknown> = {};
  body.vm_uuids.forEach((u: unknown, i) => {
    if (typeof u !== 'string') {
      throw validationError([{ loc: ['body', 'vm_uuids', i], msg: 'Input should be a valid string', type: 'string_type' }]);
    }
    const dashless = u.replace(/-/g, '').toLowerCase();
    const cvm = deps.ws.data.cvms.find((c) => c.vmUuid.replace(/-/g, '') === dashless);
    if (cvm) out[u] = renderCvmStatus(ctx, cvm, u, req.version);
  });
  return ok(out);
}

function cvmState(deps: ApiDeps, req: ApiRequest): ApiResponse {
  const cvm = requireCvm(req);
  if (req.query.get('target')) {
    throw detailError(501, 'The simulator serves only the immediate form of this endpoint (no target / SSE)');
  }
  return ok(renderCvmState(view(deps), cvm));
}

export const API_ROUTES: RouteDef[] = [
  { method: 'GET', template: '/cvms/{id}', handler: (d, r) => ok(renderCvmDetail(view(d), requireCvm(r), r.version)) },
  { method: 'GET', template: '/cvms/{id}/compose_file', handler: composeFile },
  { method: 'PATCH', template: '/cvms/{id}/envs', handler: async (d, r) => ok(await patchEnvs(d, requireCvm(r), r.body), 202) },
  { method: 'GET', template: '/cvms/{id}/operations', handler: operations },
  { method: 'GET', template: '/cvms/{id}/state', handler: cvmState },
  { method: 'POST', template: '/status/batch', handler: statusBatch },
  { method: 'GET', template: '/kms', handler: listKms, public: true },
  {
    method: 'GET',
    template: '/kms/{kms_id}',
    public: true,
    handler: (d, r) => {
      const kms = d.ws.kms(r.params.kms_id!);
      if (!kms) throw detailError(404, 'KMS not found');
      return ok(kmsIsContractCentric(r.version) ? renderKmsContract(kms) : renderKmsInfo(kms));
    },
  },
  {
    method: 'GET',
    template: '/kms/{kms_id}/nodes',
    public: true,
    handler: (d, r) => {
      if (!kmsIsContractCentric(r.version)) throw detailError(404, 'Not Found');
      const kms = d.ws.kms(r.params.kms_id!);
      if (!kms) throw detailError(404, 'KMS not found');
      return ok({ items: [renderKmsNode(kms)], total: 1 });
    },
  },
  { method: 'GET', template: '/kms/{kms_id}/pubkey/{app_id}', handler: kmsPubkey, public: true },
  { method: 'GET', template: '/apps/{app_id}/kms-info', handler: appKmsInfo },
  { method: 'GET', template: '/apps/{app_id}/cvms', handler: appCvms },
];

/** Matches a path (below /api/v1) against the route templates. */
export function matchRoute(
  routes: readonly RouteDef[],
  method: string,
  path: string,
): { route: RouteDef; params: Record<string, string> } | { allowed: string[] } | null {
  const segs = path.split('/').filter((s) => s !== '');
  const allowed: string[] = [];
  for (const route of routes) {
    const tsegs = route.template.split('/').filter((s) => s !== '');
    if (tsegs.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let matched = true;
    for (let i = 0; i < tsegs.length; i++) {
      const t = tsegs[i]!;
      const s = segs[i]!;
      if (t.startsWith('{') && t.endsWith('}')) {
        try {
          params[t.slice(1, -1)] = decodeURIComponent(s);
        } catch {
          matched = false;
          break;
        }
      } else if (t !== s) {
        matched = false;
        break;
      }
    }
    if (!matched) continue;
    if (route.method === method) return { route, params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { allowed } : null;
}

export function resolveCvm(ws: Workspace, params: Record<string, string>): CvmRecord | undefined {
  return params.id === undefined ? undefined : ws.cvm(params.id);
}
