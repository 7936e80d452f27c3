/**
 * Typed errors of the Phala Cloud HTTP client.
 *
 * An error carries only what an operator needs to decide what to do next:
 * a kind, the HTTP status, the backend's error code, message and request id,
 * and the structured details. It never carries the request (headers, body,
 * URL query) nor the raw response object, and every string that came from
 * the server is scrubbed of the secrets the client knows (the API key), since
 * a backend may echo a bad credential back in its message.
 */
import { PHALA_ERROR_CODES } from './api-schemas.ts';

/**
 * - transient: 5xx, 408, network failure, timeout — retry with backoff.
 * - conflict: 409, another operation runs on the CVM — retry later.
 * - rate_limited: 429 — retry after `retryAfterMs` when given.
 * - hash_expired: 466 — the phase 1 compose hash is stale; restart from phase 1.
 * - tx_not_verified: 467 — the backend could not verify the transaction yet;
 *   often its RPC lags behind ours, so it is retryable.
 * - hash_not_allowed: 468 — the hash is not allowed on chain; needs an operator.
 * - auth: 401/403.
 * - not_found: 404.
 * - invalid: 422 and other 4xx, and arguments rejected before any request.
 * - bad_response: the server answered something outside the contract (a 2xx
 *   body failing its schema, malformed JSON in a 2xx, a redirect, a 465
 *   without the hash-registration payload). Retrying the same request will
 *   not change the backend's code, so it is not retryable.
 */
export type PhalaApiErrorKind =
  | 'transient'
  | 'conflict'
  | 'rate_limited'
  | 'hash_expired'
  | 'tx_not_verified'
  | 'hash_not_allowed'
  | 'auth'
  | 'not_found'
  | 'invalid'
  | 'bad_response';

const RETRYABLE_KINDS: ReadonlySet<PhalaApiErrorKind> = new Set(['transient', 'conflict', 'rate_limited', 'tx_not_verified']);

export interface PhalaApiErrorDetail {
  field: string;
  /** As sent by the server; may be user data, never anything we sent in a header. */
  value?: unknown;
  message?: string;
}

export interface PhalaApiErrorInit {
  kind: PhalaApiErrorKind;
  message: string;
  status?: number | undefined;
  errorCode?: string | undefined;
  requestId?: string | undefined;
  details?: readonly PhalaApiErrorDetail[] | undefined;
  suggestions?: readonly string[] | undefined;
  retryAfterMs?: number | undefined;
  method?: string | undefined;
  path?: string | undefined;
}

/** The serialisable view of a PhalaApiError (what toJSON returns). */
export interface PhalaApiErrorJSON {
  name: 'PhalaApiError';
  kind: PhalaApiErrorKind;
  retryable: boolean;
  message: string;
  status?: number;
  errorCode?: string;
  requestId?: string;
  details?: PhalaApiErrorDetail[];
  suggestions?: string[];
  retryAfterMs?: number;
  method?: string;
  path?: string;
}

const MAX_MESSAGE_CHARS = 2000;

export class PhalaApiError extends Error {
  readonly kind: PhalaApiErrorKind;
  /** HTTP status; undefined when no response arrived (network error, timeout) or the call was rejected locally. */
  readonly status: number | undefined;
  readonly errorCode: string | undefined;
  readonly requestId: string | undefined;
  readonly details: readonly PhalaApiErrorDetail[];
  readonly suggestions: readonly string[];
  readonly retryAfterMs: number | undefined;
  readonly method: string | undefined;
  readonly path: string | undefined;

  constructor(init: PhalaApiErrorInit) {
    super(truncate(init.message || 'Phala Cloud API error'));
    // Non-enumerable like Error's own name, so inspect/JSON output stays minimal.
    Object.defineProperty(this, 'name', { value: 'PhalaApiError', enumerable: false, configurable: true });
    this.kind = init.kind;
    this.status = init.status;
    this.errorCode = init.errorCode;
    this.requestId = init.requestId;
    this.details = Object.freeze([...(init.details ?? [])]);
    this.suggestions = Object.freeze([...(init.suggestions ?? [])]);
    this.retryAfterMs = init.retryAfterMs;
    this.method = init.method;
    this.path = init.path;
  }

  get retryable(): boolean {
    return RETRYABLE_KINDS.has(this.kind);
  }

  static is(value: unknown): value is PhalaApiError {
    return value instanceof PhalaApiError;
  }

  override toString(): string {
    const tags = [this.kind, this.status, this.errorCode].filter((t) => t !== undefined).join(' ');
    const where = this.method && this.path ? ` (${this.method} ${this.path})` : '';
    return `PhalaApiError [${tags}]: ${this.message}${where}`;
  }

  toJSON(): PhalaApiErrorJSON {
    const out: PhalaApiErrorJSON = {
      name: 'PhalaApiError',
      kind: this.kind,
      retryable: this.retryable,
      message: this.message,
    };
    if (this.status !== undefined) out.status = this.status;
    if (this.errorCode !== undefined) out.errorCode = this.errorCode;
    if (this.requestId !== undefined) out.requestId = this.requestId;
    if (this.details.length > 0) out.details = this.details.map((d) => ({ ...d }));
    if (this.suggestions.length > 0) out.suggestions = [...this.suggestions];
    if (this.retryAfterMs !== undefined) out.retryAfterMs = this.retryAfterMs;
    if (this.method !== undefined) out.method = this.method;
    if (this.path !== undefined) out.path = this.path;
    return out;
  }
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

const KIND_BY_ERROR_CODE: Readonly<Record<string, PhalaApiErrorKind>> = {
  [PHALA_ERROR_CODES.HASH_INVALID_OR_EXPIRED]: 'hash_expired',
  [PHALA_ERROR_CODES.TX_VERIFICATION_FAILED]: 'tx_not_verified',
  [PHALA_ERROR_CODES.HASH_NOT_ALLOWED]: 'hash_not_allowed',
};

export function kindForStatus(status: number, errorCode?: string): PhalaApiErrorKind {
  switch (status) {
    case 401:
    case 403:
      return 'auth';
    case 404:
      return 'not_found';
    case 408:
      return 'transient';
    case 409:
      return 'conflict';
    case 429:
      return 'rate_limited';
    case 465:
      // A 465 is an answer, not a failure; reaching here means its payload
      // was missing or unreadable.
      return 'bad_response';
    case 466:
      return 'hash_expired';
    case 467:
      return 'tx_not_verified';
    case 468:
      return 'hash_not_allowed';
  }
  if (status >= 500 && status <= 599) return 'transient';
  if (status >= 400 && status <= 499) {
    // Some deployments answer hash errors with a plain 400 and the code in the body.
    const byCode = errorCode !== undefined ? KIND_BY_ERROR_CODE[errorCode] : undefined;
    return byCode ?? 'invalid';
  }
  return 'bad_response';
}

/**
 * The longest pause a Retry-After may ask for. A server (or whatever sits in front of it) that
 * asks for more is not honoured past this: the activity's own retry budget decides when to
 * give up, and one answer must not park a change for days.
 */
export const MAX_RETRY_AFTER_MS = 30_000;

/** Retry-After as milliseconds from `nowMs` (delta-seconds or an HTTP date), capped at MAX_RETRY_AFTER_MS. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '' || v.length > 64) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.min(MAX_RETRY_AFTER_MS, Math.round(Number(v) * 1000));
  // Date.parse accepts many forms; require something that looks like an HTTP date.
  if (!/^[A-Za-z]{3,9},? /.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
}

// ---------------------------------------------------------------------------
// Body parsing
// ---------------------------------------------------------------------------

export interface ErrorBodyInfo {
  message?: string;
  errorCode?: string;
  requestId?: string;
  details?: PhalaApiErrorDetail[];
  suggestions?: string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const LOC_PREFIXES = new Set(['body', 'query', 'path', 'header', 'cookie']);

function locToField(loc: unknown): string {
  if (!Array.isArray(loc)) return '';
  const parts = loc.filter((p, i) => !(i === 0 && typeof p === 'string' && LOC_PREFIXES.has(p)));
  return parts.map(String).join('.');
}

function structuredInfo(obj: Record<string, unknown>): ErrorBodyInfo {
  const info: ErrorBodyInfo = {};
  if (typeof obj.message === 'string') info.message = obj.message;
  if (typeof obj.error_code === 'string') info.errorCode = obj.error_code;
  if (typeof obj.request_id === 'string') info.requestId = obj.request_id;
  if (Array.isArray(obj.details)) {
    const details: PhalaApiErrorDetail[] = [];
    for (const d of obj.details) {
      if (!isRecord(d) || typeof d.field !== 'string') continue;
      const item: PhalaApiErrorDetail = { field: d.field };
      if ('value' in d) item.value = d.value;
      if (typeof d.message === 'string') item.message = d.message;
      details.push(item);
    }
    if (details.length > 0) info.details = details;
  }
  if (Array.isArray(obj.suggestions)) {
    const s = obj.suggestions.filter((x): x is string => typeof x === 'string');
    if (s.length > 0) info.suggestions = s;
  }
  return info;
}

/**
 * Reads the two error shapes the backend emits: a StructuredError (top level
 * or wrapped in `detail`) and FastAPI's `{detail: string | ValidationError[] |
 * object}`. Validation items drop FastAPI's `input`, which echoes the request.
 */
export function extractErrorInfo(body: unknown): ErrorBodyInfo {
  if (!isRecord(body)) return {};
  const detail = body.detail;
  if (isRecord(detail)) {
    const inner = structuredInfo(detail);
    if (inner.requestId === undefined && typeof body.request_id === 'string') inner.requestId = body.request_id;
    return inner;
  }
  if (typeof detail === 'string') {
    const info: ErrorBodyInfo = { message: detail };
    if (typeof body.request_id === 'string') info.requestId = body.request_id;
    return info;
  }
  if (Array.isArray(detail)) {
    const details: PhalaApiErrorDetail[] = [];
    for (const item of detail) {
      if (!isRecord(item) || typeof item.msg !== 'string') continue;
      const d: PhalaApiErrorDetail = { field: locToField(item.loc), message: item.msg };
      details.push(d);
    }
    const info: ErrorBodyInfo = {};
    if (details.length > 0) {
      info.details = details;
      info.message = details.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message)).join('; ');
    }
    if (typeof body.request_id === 'string') info.requestId = body.request_id;
    return info;
  }
  return structuredInfo(body);
}

// ---------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------

const REDACTED = '[REDACTED]';

/** Deep copy of `value` with every occurrence of each secret replaced. */
export function redactSecrets<T>(value: T, secrets: readonly string[]): T {
  const active = secrets.filter((s) => typeof s === 'string' && s.length > 0);
  if (active.length === 0) return value;
  const seen = new WeakMap<object, unknown>();
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      let out = v;
      for (const s of active) if (out.includes(s)) out = out.split(s).join(REDACTED);
      return out;
    }
    if (typeof v !== 'object' || v === null) return v;
    const cached = seen.get(v);
    if (cached !== undefined) return cached;
    if (Array.isArray(v)) {
      const arr: unknown[] = [];
      seen.set(v, arr);
      for (const x of v) arr.push(walk(x));
      return arr;
    }
    const obj: Record<string, unknown> = {};
    seen.set(v, obj);
    for (const [k, x] of Object.entries(v)) obj[walk(k) as string] = walk(x);
    return obj;
  };
  return walk(value) as T;
}

function truncate(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS)}…` : s;
}

// ---------------------------------------------------------------------------
// Factories used by the client
// ---------------------------------------------------------------------------

export interface HttpErrorInput {
  status: number;
  statusText?: string | undefined;
  /** Raw response text; JSON is parsed here so malformed bodies are handled in one place. */
  bodyText: string;
  headers: Headers;
  method?: string | undefined;
  path?: string | undefined;
  /** X-Request-ID we sent, used when the server does not echo one. */
  sentRequestId?: string | undefined;
  /** Strings that must not survive into the error (the API key). */
  secrets?: readonly string[] | undefined;
}

export function parseJsonOrUndefined(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Builds the error for a non-2xx response. */
export function errorFromHttpResponse(input: HttpErrorInput): PhalaApiError {
  const secrets = input.secrets ?? [];
  const body = parseJsonOrUndefined(input.bodyText);
  const info = redactSecrets(extractErrorInfo(body), secrets);
  const statusLine = `HTTP ${input.status}${input.statusText ? ` ${input.statusText}` : ''}`;
  const headerRequestId = input.headers.get('x-request-id') ?? undefined;
  return new PhalaApiError({
    kind: kindForStatus(input.status, info.errorCode),
    message: info.message ?? (body === undefined && input.bodyText.trim() !== '' ? `${statusLine} (non-JSON body)` : statusLine),
    status: input.status,
    errorCode: info.errorCode,
    requestId: redactSecrets(info.requestId ?? headerRequestId ?? input.sentRequestId, secrets),
    details: info.details,
    suggestions: info.suggestions,
    retryAfterMs: parseRetryAfter(input.headers.get('retry-after')),
    method: input.method,
    path: input.path,
  });
}

/** No response arrived: connection refused/reset, DNS, TLS. */
export function networkError(opts: {
  cause: unknown;
  method?: string | undefined;
  path?: string | undefined;
  requestId?: string | undefined;
  secrets?: readonly string[] | undefined;
}): PhalaApiError {
  // Only the cause's code and message are kept: an injected fetch may attach
  // the request (and its headers) to the error object itself.
  const parts: string[] = [];
  let c: unknown = opts.cause;
  for (let depth = 0; depth < 3 && c instanceof Error; depth++) {
    const code = (c as { code?: unknown }).code;
    parts.push(typeof code === 'string' && !c.message.includes(code) ? `${code}: ${c.message}` : c.message);
    c = (c as { cause?: unknown }).cause;
  }
  const reason = redactSecrets(parts.filter(Boolean).join(' <- ') || 'unknown error', opts.secrets ?? []);
  return new PhalaApiError({
    kind: 'transient',
    message: `network error: ${reason}`,
    requestId: opts.requestId,
    method: opts.method,
    path: opts.path,
  });
}

export function timeoutError(opts: {
  timeoutMs: number;
  method?: string | undefined;
  path?: string | undefined;
  requestId?: string | undefined;
}): PhalaApiError {
  return new PhalaApiError({
    kind: 'transient',
    message: `request timed out after ${opts.timeoutMs} ms`,
    requestId: opts.requestId,
    method: opts.method,
    path: opts.path,
  });
}

/** A response outside the contract; `issues` are schema paths, never values. */
export function badResponseError(opts: {
  reason: string;
  status?: number | undefined;
  issues?: readonly { path: readonly PropertyKey[]; code: string }[] | undefined;
  errorCode?: string | undefined;
  method?: string | undefined;
  path?: string | undefined;
  requestId?: string | undefined;
  secrets?: readonly string[] | undefined;
}): PhalaApiError {
  // Paths can contain record keys chosen by the server, hence the redaction.
  const details = redactSecrets(
    (opts.issues ?? []).slice(0, 20).map((i) => ({
      field: i.path.map((p) => String(p)).join('.') || '(root)',
      message: i.code,
    })),
    opts.secrets ?? [],
  );
  const summary = details.map((d) => `${d.field} (${d.message})`).join(', ');
  return new PhalaApiError({
    kind: 'bad_response',
    message: summary ? `${opts.reason}: ${summary}` : opts.reason,
    status: opts.status,
    errorCode: opts.errorCode,
    requestId: opts.requestId,
    details,
    method: opts.method,
    path: opts.path,
  });
}

/** Arguments rejected before any request was made. */
export function invalidArgumentError(message: string, field?: string): PhalaApiError {
  return new PhalaApiError({
    kind: 'invalid',
    message,
    details: field !== undefined ? [{ field, message }] : undefined,
  });
}
