/**
 * HTTP client for the Phala Cloud API endpoints this service needs.
 *
 * Every answer is validated with the schemas in api-schemas.ts, and every
 * failure surfaces as a PhalaApiError whose `kind` tells the caller whether to
 * retry, restart the two-phase flow, or stop. The client itself never
 * retries: retries belong to the Temporal activity that calls it, where they
 * are visible and bounded.
 */
import { inspect } from 'node:util';
import type { z } from 'zod';
import {
  AppComposeSchema,
  AppKmsInfoSchema,
  AppCvmListSchema,
  AppEnvEncryptPubkeySchema,
  BatchStatusResponseSchema,
  CvmDetailSchema,
  CvmOperationsPageSchema,
  CvmStateSchema,
  KMS_CONTRACT_API_VERSION,
  KMS_NODE_API_VERSION,
  KmsContractInfoSchema,
  KmsContractListResponseSchema,
  KmsInfoSchema,
  KmsListResponseSchema,
  PreconditionRequiredSchema,
  SUPPORTED_API_VERSIONS,
  UpdateCvmEnvsAcceptedSchema,
  type ApiVersion,
  type AppCompose,
  type AppKmsInfo,
  type AppCvmList,
  type AppEnvEncryptPubkey,
  type BatchStatusResponse,
  type CvmDetail,
  type CvmOperationsPage,
  type CvmState,
  type KmsContractInfo,
  type KmsContractListResponse,
  type KmsInfo,
  type KmsListResponse,
  type PreconditionRequired,
  type UpdateCvmEnvsResult,
} from './api-schemas.ts';
import {
  PhalaApiError,
  badResponseError,
  errorFromHttpResponse,
  extractErrorInfo,
  invalidArgumentError,
  networkError,
  parseJsonOrUndefined,
  redactSecrets,
  timeoutError,
} from './api-errors.ts';

/** What @phala/cloud's sources send by default since the contract-centric KMS API. */
export const DEFAULT_API_VERSION: ApiVersion = '2026-06-23';
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Far above any answer of the endpoints used (a compose file, a page of operations), far below trouble. */
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const DEFAULT_USER_AGENT = 'durable-cvm-envs/0.1.0';

export interface PhalaCloudClientOptions {
  /** Including the `/api/v1` prefix, e.g. https://cloud-api.phala.com/api/v1 */
  baseUrl: string;
  /** Sent as X-API-Key. One of apiKey and bearerToken is required; apiKey wins when both are set (as in the SDK). */
  apiKey?: string | undefined;
  /** Sent as `Authorization: Bearer …` (e.g. a CI OIDC token) when no apiKey is given. */
  bearerToken?: string | undefined;
  /** Sent as X-Phala-Workspace: which workspace a credential trusted in several acts in. */
  workspace?: string | undefined;
  apiVersion?: ApiVersion;
  /** Per request, covering connection, headers and body. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  userAgent?: string;
  /** Largest response body read, in bytes; default DEFAULT_MAX_RESPONSE_BYTES. */
  maxResponseBytes?: number;
}

export interface CallOptions {
  /** Sent as X-Request-ID so the backend's logs can be correlated with ours. */
  requestId?: string;
  /** Caller cancellation (e.g. Temporal activity cancellation); its reason is rethrown as is. */
  signal?: AbortSignal;
}

export interface UpdateCvmEnvsParams {
  id: string;
  /** Hex ciphertext (ephemeral pubkey ‖ iv ‖ ciphertext‖tag). */
  encrypted_env: string;
  env_keys?: string[] | null;
  /** Phase 2 only, together with transaction_hash. */
  compose_hash?: string;
  transaction_hash?: string;
}

export interface CvmOperationsQuery {
  /** Opaque cursor from the previous page's `next_cursor`. */
  cursor?: string;
  /** Page size, 1..500 (backend default 50). */
  limit?: number;
  /** Alias of `limit`; the endpoint paginates by cursor, not by page number. */
  pageSize?: number;
}

export interface KmsListQuery {
  page?: number;
  pageSize?: number;
  isOnchain?: boolean;
}

type Query = Record<string, string | number | boolean | undefined>;

interface RawResponse {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
}

interface RequestContext {
  method: string;
  path: string;
  requestId: string | undefined;
  /** Overrides the client's version for this call (the pinned KMS calls). */
  version?: ApiVersion;
}

const HEX_RE = /^(0x)?[0-9a-fA-F]+$/;
const APP_ID_RE = /^(0x)?[0-9a-fA-F]{40}$/;
// Visible ASCII only: a header value with CR/LF would be rejected by fetch
// with a message we do not control.
const HEADER_SAFE_RE = /^[\x21-\x7e]+$/;

export type PreconditionReadResult =
  { ok: true; value: PreconditionRequired } | { ok: false; reason: string; issues?: { path: PropertyKey[]; code: string }[] };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The older flat 465 body `{message, compose_hash, app_id, device_id, kms_info}` that the Python
 * SDK (phala_cloud) still reads. Only a top-level object qualifies: a body with `detail` or
 * `error_code` is the structured form, and a flat object under `detail` is read by neither SDK.
 */
function readFlatPrecondition(body: Record<string, unknown>): PreconditionReadResult | undefined {
  if ('detail' in body || 'error_code' in body || !body.compose_hash || !body.app_id) return undefined;
  const parsed = PreconditionRequiredSchema.safeParse({
    status: 'precondition_required',
    message: typeof body.message === 'string' && body.message !== '' ? body.message : 'Compose hash verification required',
    compose_hash: body.compose_hash,
    app_id: body.app_id,
    device_id: body.device_id || '',
    kms_info: body.kms_info,
  });
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    reason: 'flat 465 payload does not match its schema',
    issues: parsed.error.issues.map((i) => ({ path: [...i.path], code: i.code })),
  };
}

/**
 * Reads a 465 body the way the official SDKs do. The structured form is
 * read as @phala/cloud's updateCvmEnvs reads it:
 * - the StructuredError object is `body.detail` when `detail` is present,
 *   otherwise the body itself but only if it has a top-level `error_code`;
 * - its `details` array of `{field, value}` must carry truthy `compose_hash`
 *   and `app_id`; `device_id` defaults to ''; `message` defaults to the SDK's
 *   text;
 * - `kms_info` must then satisfy KmsInfoSchema (id, url, version).
 * A flat `{detail: {compose_hash, app_id, ...}}` is NOT recognised: no SDK
 * reads it, so a backend never relies on it. The top-level flat form is.
 */
export function readPreconditionRequired(body: unknown): PreconditionReadResult {
  if (!isRecord(body)) return { ok: false, reason: '465 body is not a JSON object' };
  const flat = readFlatPrecondition(body);
  if (flat !== undefined) return flat;
  let container: Record<string, unknown> | undefined;
  if (body.detail !== undefined && body.detail !== null) {
    container = isRecord(body.detail) ? body.detail : undefined;
  } else if ('error_code' in body) {
    container = body;
  }
  if (container === undefined || !Array.isArray(container.details)) {
    return { ok: false, reason: '465 body has no structured error with a details array' };
  }
  const fields = new Map<string, unknown>();
  for (const d of container.details) {
    if (isRecord(d) && typeof d.field === 'string') fields.set(d.field, d.value);
  }
  if (!fields.get('compose_hash') || !fields.get('app_id')) {
    return { ok: false, reason: '465 details lack compose_hash or app_id' };
  }
  const message =
    typeof container.message === 'string' && container.message !== '' ? container.message : 'Compose hash verification required';
  const kmsInfo = KmsInfoSchema.safeParse(fields.get('kms_info'));
  const parsed = PreconditionRequiredSchema.safeParse({
    status: 'precondition_required',
    message,
    compose_hash: fields.get('compose_hash'),
    app_id: fields.get('app_id'),
    device_id: fields.get('device_id') || '',
    kms_info: fields.get('kms_info'),
  });
  if (!parsed.success || !kmsInfo.success) {
    const issues = [
      ...(parsed.success ? [] : parsed.error.issues),
      ...(kmsInfo.success ? [] : kmsInfo.error.issues.map((i) => ({ ...i, path: ['kms_info', ...i.path] }))),
    ];
    const seen = new Set<string>();
    return {
      ok: false,
      reason: '465 hash-registration payload does not match its schema',
      issues: issues
        .map((i) => ({ path: [...i.path], code: i.code }))
        .filter((i) => {
          const k = i.path.join('.');
          return seen.has(k) ? false : (seen.add(k), true);
        }),
    };
  }
  return { ok: true, value: parsed.data };
}

function requireNonEmpty(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw invalidArgumentError(`${field} must be a non-empty string`, field);
  }
  return value;
}

/**
 * The characters any id the API hands out is made of (hashed and numeric ids, names, UUIDs,
 * `app_`/`instance_` hex, KMS slugs). Anything else is refused before a request is built:
 * `.` and `..` would be resolved away by the URL (`PATCH /cvms/../envs` is `PATCH /envs`),
 * and separators, `%` or whitespace have no place in an id.
 */
const ID_SEGMENT_RE = /^[A-Za-z0-9._:~-]{1,256}$/;

/** One path segment from an id; the id itself is not echoed in the error. */
function segment(value: string, field = 'id'): string {
  if (typeof value !== 'string' || !ID_SEGMENT_RE.test(value) || /^\.+$/.test(value)) {
    throw invalidArgumentError(`${field} is not a valid id: 1-256 letters, digits, '.', '_', ':', '~' or '-', and not '.' or '..'`, field);
  }
  return encodeURIComponent(value);
}

export class PhalaCloudClient {
  readonly baseUrl: string;
  readonly apiVersion: ApiVersion;
  readonly timeoutMs: number;
  readonly workspace: string | undefined;
  readonly maxResponseBytes: number;
  readonly #apiKey: string | undefined;
  readonly #bearerToken: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #userAgent: string;

  constructor(options: PhalaCloudClientOptions) {
    if (!isRecord(options)) throw invalidArgumentError('PhalaCloudClient options are required');
    let url: URL;
    try {
      url = new URL(requireNonEmpty(options.baseUrl, 'baseUrl'));
    } catch (err) {
      if (err instanceof PhalaApiError) throw err;
      throw invalidArgumentError('baseUrl must be an absolute http(s) URL', 'baseUrl');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw invalidArgumentError('baseUrl must use http or https', 'baseUrl');
    }
    if (url.username || url.password || url.search || url.hash) {
      throw invalidArgumentError('baseUrl must not contain credentials, a query or a fragment', 'baseUrl');
    }
    this.baseUrl = url.toString().replace(/\/+$/, '');

    this.#apiKey = optionalCredential(options.apiKey, 'apiKey');
    this.#bearerToken = optionalCredential(options.bearerToken, 'bearerToken');
    if (this.#apiKey === undefined && this.#bearerToken === undefined) {
      throw invalidArgumentError('apiKey must be a non-empty string (or pass bearerToken)', 'apiKey');
    }
    if (options.workspace !== undefined && options.workspace.trim() !== '') {
      if (!HEADER_SAFE_RE.test(options.workspace.trim())) {
        throw invalidArgumentError('workspace must be visible ASCII without spaces', 'workspace');
      }
      this.workspace = options.workspace.trim();
    }

    const version = options.apiVersion ?? DEFAULT_API_VERSION;
    if (!(SUPPORTED_API_VERSIONS as readonly string[]).includes(version)) {
      throw invalidArgumentError(
        `apiVersion must be one of ${SUPPORTED_API_VERSIONS.join(', ')} (schemas are checked against these)`,
        'apiVersion',
      );
    }
    this.apiVersion = version;

    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw invalidArgumentError('timeoutMs must be a positive number', 'timeoutMs');
    }
    this.timeoutMs = timeoutMs;

    const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes < 1024) {
      throw invalidArgumentError('maxResponseBytes must be an integer of at least 1024', 'maxResponseBytes');
    }
    this.maxResponseBytes = maxResponseBytes;

    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw invalidArgumentError('no fetch implementation available', 'fetch');
    this.#fetch = f;

    const ua = options.userAgent ?? DEFAULT_USER_AGENT;
    if (!/^[\x20-\x7e]+$/.test(ua)) throw invalidArgumentError('userAgent must be printable ASCII', 'userAgent');
    this.#userAgent = ua;
  }

  // The key lives in a private field; these keep logs and JSON dumps of the
  // client itself equally clean.
  toJSON(): { baseUrl: string; apiVersion: ApiVersion; timeoutMs: number; workspace?: string } {
    return {
      baseUrl: this.baseUrl,
      apiVersion: this.apiVersion,
      timeoutMs: this.timeoutMs,
      ...(this.workspace === undefined ? {} : { workspace: this.workspace }),
    };
  }

  get #secrets(): string[] {
    return [this.#apiKey, this.#bearerToken].filter((s): s is string => s !== undefined);
  }

  [inspect.custom](): string {
    return `PhalaCloudClient ${inspect(this.toJSON())}`;
  }

  // -------------------------------------------------------------------------
  // Endpoints
  // -------------------------------------------------------------------------

  /** GET /cvms/{id} */
  async getCvm(id: string, opts: CallOptions = {}): Promise<CvmDetail> {
    const path = `/cvms/${segment(requireNonEmpty(id, 'id'))}`;
    return this.#call('GET', path, CvmDetailSchema, opts);
  }

  /**
   * GET /cvms/{id}/compose_file. Returns the object exactly as decoded from
   * JSON (key order and all), not zod's rebuilt copy: the compose hash is
   * computed over it.
   */
  async getComposeFile(id: string, opts: CallOptions = {}): Promise<AppCompose> {
    const path = `/cvms/${segment(requireNonEmpty(id, 'id'))}/compose_file`;
    const ctx = this.#ctx('GET', path, opts);
    const raw = await this.#send(ctx, { signal: opts.signal });
    const body = this.#okJson(ctx, raw);
    this.#validate(ctx, raw, AppComposeSchema, body);
    return body as AppCompose;
  }

  /**
   * GET /kms/{kms}/pubkey/{app_id}, pinned to the node-keyed API version. `kms`
   * is the KMS slug or id; a kms_type word (`base`, as the CLI sends) is passed
   * through too: which KMS it names is the backend's call, and the signature
   * check on the answer decides whether the key is trusted.
   */
  async getAppEnvEncryptPubkey(kms: string, appId: string, opts: CallOptions = {}): Promise<AppEnvEncryptPubkey> {
    requireNonEmpty(kms, 'kms');
    if (!APP_ID_RE.test(requireNonEmpty(appId, 'appId'))) {
      throw invalidArgumentError('appId must be 40 hex characters, optionally 0x-prefixed', 'appId');
    }
    const path = `/kms/${segment(kms.trim(), 'kms')}/pubkey/${segment(appId, 'appId')}`;
    return this.#call('GET', path, AppEnvEncryptPubkeySchema, { ...opts, version: KMS_NODE_API_VERSION });
  }

  /** GET /apps/{app_id}/cvms: every CVM of an app (the SDK's getAppCvms). */
  async listAppCvms(appId: string, opts: CallOptions = {}): Promise<AppCvmList> {
    if (!APP_ID_RE.test(requireNonEmpty(appId, 'appId'))) {
      throw invalidArgumentError('appId must be 40 hex characters, optionally 0x-prefixed', 'appId');
    }
    const path = `/apps/${segment(appId.replace(/^0x/, '').toLowerCase(), 'appId')}/cvms`;
    return this.#call('GET', path, AppCvmListSchema, opts);
  }

  /** GET /kms/{kms_id} (node id or slug), pinned to the node-shaped API version. */
  async getKms(kmsId: string, opts: CallOptions = {}): Promise<KmsInfo> {
    const path = `/kms/${segment(requireNonEmpty(kmsId, 'kmsId'), 'kmsId')}`;
    return this.#call('GET', path, KmsInfoSchema, { ...opts, version: KMS_NODE_API_VERSION });
  }

  /** GET /kms: KMS nodes, pinned to the node-shaped API version. */
  async listKms(opts: KmsListQuery & CallOptions = {}): Promise<KmsListResponse> {
    return this.#call('GET', '/kms', KmsListResponseSchema, { ...opts, version: KMS_NODE_API_VERSION }, { query: kmsListQuery(opts) });
  }

  /** GET /kms: KMS contracts (API 2026-06-23 and later, pinned). */
  async listKmsContracts(opts: KmsListQuery & CallOptions = {}): Promise<KmsContractListResponse> {
    return this.#call(
      'GET',
      '/kms',
      KmsContractListResponseSchema,
      { ...opts, version: KMS_CONTRACT_API_VERSION },
      { query: kmsListQuery(opts) },
    );
  }

  /** GET /kms/{slug}: one KMS contract (API 2026-06-23 and later, pinned). */
  async getKmsContract(slug: string, opts: CallOptions = {}): Promise<KmsContractInfo> {
    const path = `/kms/${segment(requireNonEmpty(slug, 'slug'), 'slug')}`;
    return this.#call('GET', path, KmsContractInfoSchema, { ...opts, version: KMS_CONTRACT_API_VERSION });
  }

  /**
   * PATCH /cvms/{id}/envs. A 465 is an answer of phase 1, returned as
   * `{status: 'precondition_required', ...}`; every other non-2xx throws.
   */
  async updateCvmEnvs(params: UpdateCvmEnvsParams, opts: CallOptions = {}): Promise<UpdateCvmEnvsResult> {
    if (!isRecord(params)) throw invalidArgumentError('updateCvmEnvs params are required');
    const id = requireNonEmpty(params.id, 'id');
    const encrypted = requireNonEmpty(params.encrypted_env, 'encrypted_env');
    if (!HEX_RE.test(encrypted) || encrypted.replace(/^0x/, '').length % 2 !== 0) {
      throw invalidArgumentError('encrypted_env must be an even-length hex string', 'encrypted_env');
    }
    if (params.env_keys !== undefined && params.env_keys !== null) {
      if (!Array.isArray(params.env_keys) || !params.env_keys.every((k) => typeof k === 'string' && k !== '')) {
        throw invalidArgumentError('env_keys must be an array of non-empty strings or null', 'env_keys');
      }
    }
    const hasCompose = params.compose_hash !== undefined;
    const hasTx = params.transaction_hash !== undefined;
    if (hasCompose !== hasTx) {
      throw invalidArgumentError(
        'compose_hash and transaction_hash go together (phase 2); pass both or neither',
        hasCompose ? 'transaction_hash' : 'compose_hash',
      );
    }
    if (hasCompose) {
      requireNonEmpty(params.compose_hash, 'compose_hash');
      requireNonEmpty(params.transaction_hash, 'transaction_hash');
    }

    const body: Record<string, unknown> = { encrypted_env: encrypted };
    if (params.env_keys !== undefined) body.env_keys = params.env_keys;
    if (hasCompose) {
      body.compose_hash = params.compose_hash;
      body.transaction_hash = params.transaction_hash;
    }

    const ctx = this.#ctx('PATCH', `/cvms/${segment(id)}/envs`, opts);
    const raw = await this.#send(ctx, { body, signal: opts.signal });
    if (raw.status === 465) {
      const parsedBody = parseJsonOrUndefined(raw.text);
      const read = readPreconditionRequired(parsedBody);
      if (read.ok) return read.value;
      const info = redactSecrets(extractErrorInfo(parsedBody), this.#secrets);
      throw badResponseError({
        reason: `HTTP 465 without a usable hash-registration payload (${read.reason})`,
        status: 465,
        issues: read.issues,
        errorCode: info.errorCode,
        requestId: info.requestId ?? raw.headers.get('x-request-id') ?? ctx.requestId,
        method: ctx.method,
        path: ctx.path,
        secrets: this.#secrets,
      });
    }
    const json = this.#okJson(ctx, raw);
    return this.#validate(ctx, raw, UpdateCvmEnvsAcceptedSchema, json);
  }

  /** GET /apps/{app_id}/kms-info: the app's owner and its kind (eoa, safe, …), with a Safe link. */
  async getAppKmsInfo(appId: string, opts: CallOptions = {}): Promise<AppKmsInfo> {
    if (!APP_ID_RE.test(requireNonEmpty(appId, 'appId'))) {
      throw invalidArgumentError('appId must be 40 hex characters, optionally 0x-prefixed', 'appId');
    }
    return this.#call('GET', `/apps/${segment(appId.replace(/^0x/, '').toLowerCase(), 'appId')}/kms-info`, AppKmsInfoSchema, opts);
  }

  /** GET /cvms/{id}/operations (cursor-paginated, newest first). */
  async getCvmOperations(id: string, opts: CvmOperationsQuery & CallOptions = {}): Promise<CvmOperationsPage> {
    const path = `/cvms/${segment(requireNonEmpty(id, 'id'))}/operations`;
    const query: Query = {};
    const limit = opts.limit ?? opts.pageSize;
    if (limit !== undefined) {
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
        throw invalidArgumentError('limit must be an integer between 1 and 500', 'limit');
      }
      query.limit = limit;
    }
    if (opts.cursor !== undefined) query.cursor = requireNonEmpty(opts.cursor, 'cursor');
    return this.#call('GET', path, CvmOperationsPageSchema, opts, { query });
  }

  /** GET /cvms/{id}/state (immediate mode; no SSE). */
  async getCvmState(id: string, opts: CallOptions = {}): Promise<CvmState> {
    const path = `/cvms/${segment(requireNonEmpty(id, 'id'))}/state`;
    return this.#call('GET', path, CvmStateSchema, opts);
  }

  /** POST /status/batch. Takes VM UUIDs (CvmDetail.vm_uuid), keyed the same way in the answer. */
  async getStatusBatch(vmUuids: readonly string[], opts: CallOptions = {}): Promise<BatchStatusResponse> {
    if (!Array.isArray(vmUuids) || !vmUuids.every((u) => typeof u === 'string' && u !== '')) {
      throw invalidArgumentError('vmUuids must be an array of non-empty strings', 'vmUuids');
    }
    return this.#call('POST', '/status/batch', BatchStatusResponseSchema, opts, {
      body: { vm_uuids: [...vmUuids] },
    });
  }

  // -------------------------------------------------------------------------
  // Transport
  // -------------------------------------------------------------------------

  #ctx(method: string, path: string, opts: CallOptions & { version?: ApiVersion }): RequestContext {
    let requestId: string | undefined;
    if (opts.requestId !== undefined) {
      if (typeof opts.requestId !== 'string' || !HEADER_SAFE_RE.test(opts.requestId) || opts.requestId.length > 200) {
        throw invalidArgumentError('requestId must be 1-200 visible ASCII characters', 'requestId');
      }
      requestId = opts.requestId;
    }
    return { method, path, requestId, ...(opts.version === undefined ? {} : { version: opts.version }) };
  }

  async #call<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    opts: CallOptions & { version?: ApiVersion },
    extra: { query?: Query; body?: unknown } = {},
  ): Promise<z.output<S>> {
    const ctx = this.#ctx(method, path, opts);
    const raw = await this.#send(ctx, { query: extra.query, body: extra.body, signal: opts.signal });
    const json = this.#okJson(ctx, raw);
    return this.#validate(ctx, raw, schema, json);
  }

  async #send(
    ctx: RequestContext,
    req: { query?: Query | undefined; body?: unknown; signal?: AbortSignal | undefined },
  ): Promise<RawResponse> {
    let url = `${this.baseUrl}${ctx.path}`;
    if (req.query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) if (v !== undefined) qs.set(k, String(v));
      const s = qs.toString();
      if (s) url += `?${s}`;
    }
    const headers: Record<string, string> = {
      'X-Phala-Version': ctx.version ?? this.apiVersion,
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'User-Agent': this.#userAgent,
    };
    if (this.#apiKey !== undefined) headers['X-API-Key'] = this.#apiKey;
    else headers.Authorization = `Bearer ${this.#bearerToken!}`;
    if (this.workspace !== undefined) headers['X-Phala-Workspace'] = this.workspace;
    if (ctx.requestId !== undefined) headers['X-Request-ID'] = ctx.requestId;

    if (req.signal?.aborted) throw req.signal.reason;
    const timeoutSignal = AbortSignal.timeout(this.timeoutMs);
    const signal = req.signal ? AbortSignal.any([timeoutSignal, req.signal]) : timeoutSignal;

    try {
      const res = await this.#fetch(url, {
        method: ctx.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal,
        // Following a redirect would resend X-API-Key to wherever Location
        // points (fetch strips only Authorization across origins).
        redirect: 'manual',
      });
      if (res.status === 0 || (res.status >= 300 && res.status < 400)) {
        void res.body?.cancel().catch(() => undefined);
        throw badResponseError({
          reason: `unexpected redirect (HTTP ${res.status}${describeLocation(res.headers.get('location'))}); not followed so the API key stays with ${new URL(this.baseUrl).origin}`,
          status: res.status || undefined,
          method: ctx.method,
          path: ctx.path,
          requestId: res.headers.get('x-request-id') ?? ctx.requestId,
          secrets: this.#secrets,
        });
      }
      const text = await this.#readCapped(ctx, res);
      return { status: res.status, statusText: res.statusText, headers: res.headers, text };
    } catch (err) {
      if (err instanceof PhalaApiError) throw err;
      if (timeoutSignal.aborted) {
        throw timeoutError({ timeoutMs: this.timeoutMs, method: ctx.method, path: ctx.path, requestId: ctx.requestId });
      }
      if (req.signal?.aborted) throw req.signal.reason;
      throw networkError({
        cause: err,
        method: ctx.method,
        path: ctx.path,
        requestId: ctx.requestId,
        secrets: this.#secrets,
      });
    }
  }

  /**
   * The body as text, refused once it passes maxResponseBytes: a hostile or broken server
   * could otherwise make the worker buffer without bound. The same answer would come again,
   * so the error is a bad_response (not retried).
   */
  async #readCapped(ctx: RequestContext, res: Response): Promise<string> {
    const tooLarge = () =>
      badResponseError({
        reason: `HTTP ${res.status} body is larger than ${this.maxResponseBytes} bytes`,
        status: res.status,
        method: ctx.method,
        path: ctx.path,
        requestId: res.headers.get('x-request-id') ?? ctx.requestId,
        secrets: this.#secrets,
      });
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > this.maxResponseBytes) {
      void res.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    if (!res.body) return res.text();
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.maxResponseBytes) {
        void reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** JSON of a 2xx answer; any other status becomes its typed error. */
  #okJson(ctx: RequestContext, raw: RawResponse): unknown {
    if (raw.status < 200 || raw.status > 299) {
      throw errorFromHttpResponse({
        status: raw.status,
        statusText: raw.statusText,
        bodyText: raw.text,
        headers: raw.headers,
        method: ctx.method,
        path: ctx.path,
        sentRequestId: ctx.requestId,
        secrets: this.#secrets,
      });
    }
    const json = parseJsonOrUndefined(raw.text);
    if (json === undefined) {
      throw badResponseError({
        reason: `HTTP ${raw.status} body is not valid JSON`,
        status: raw.status,
        method: ctx.method,
        path: ctx.path,
        requestId: raw.headers.get('x-request-id') ?? ctx.requestId,
        secrets: this.#secrets,
      });
    }
    return json;
  }

  #validate<S extends z.ZodType>(ctx: RequestContext, raw: RawResponse, schema: S, json: unknown): z.output<S> {
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    throw badResponseError({
      reason: `HTTP ${raw.status} body does not match the expected schema`,
      status: raw.status,
      issues: parsed.error.issues.map((i) => ({ path: [...i.path], code: i.code })),
      method: ctx.method,
      path: ctx.path,
      requestId: raw.headers.get('x-request-id') ?? ctx.requestId,
      secrets: this.#secrets,
    });
  }
}

function optionalCredential(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalidArgumentError(`${field} must be a string`, field);
  // Deliberately vague: the message must not quote the credential.
  if (!HEADER_SAFE_RE.test(value)) throw invalidArgumentError(`${field} contains characters not allowed in an HTTP header`, field);
  return value;
}

function kmsListQuery(opts: KmsListQuery): Query {
  const query: Query = {};
  if (opts.page !== undefined) query.page = positiveInt(opts.page, 'page');
  if (opts.pageSize !== undefined) query.page_size = positiveInt(opts.pageSize, 'pageSize');
  if (opts.isOnchain !== undefined) query.is_onchain = Boolean(opts.isOnchain);
  return query;
}

function positiveInt(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 1) throw invalidArgumentError(`${field} must be a positive integer`, field);
  return v;
}

function describeLocation(location: string | null): string {
  if (!location) return '';
  try {
    const u = new URL(location, 'http://relative.invalid');
    return u.origin === 'http://relative.invalid' ? ` to ${u.pathname}` : ` to ${u.origin}${u.pathname}`;
  } catch {
    return ' to an unparseable Location';
  }
}
