/**
 * The two error body styles the real backend uses, so that clients meet both here:
 * FastAPI's `{detail: ...}` for framework-level failures (auth, not found, validation) and the
 * backend's StructuredError for business rules (the 465–468 compose-hash family and friends).
 *
 * Messages are composed by the simulator from names and lengths only; nothing here ever echoes
 * an API key, a private key or a decrypted env value.
 */

export type ErrorEnvelope = 'top-level' | 'detail';

export interface StructuredDetail {
  field: string;
  value?: unknown;
  message?: string;
}

export interface StructuredErrorInit {
  status: number;
  errorCode: string;
  message: string;
  details?: StructuredDetail[];
  suggestions?: string[];
  links?: { label: string; url: string }[];
  headers?: Record<string, string>;
}

export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** An HTTP answer that is not a success; thrown by handlers, rendered by the server. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly body: (requestId: string, envelope: ErrorEnvelope) => unknown;
  readonly headers: Record<string, string>;
  /** A non-JSON body (e.g. an HTML page from the edge proxy). */
  readonly raw?: { contentType: string; text: string };

  constructor(
    status: number,
    message: string,
    body: (requestId: string, envelope: ErrorEnvelope) => unknown,
    headers: Record<string, string> = {},
    raw?: { contentType: string; text: string },
  ) {
    super(message);
    this.status = status;
    this.body = body;
    this.headers = headers;
    if (raw) this.raw = raw;
  }
}

/** FastAPI HTTPException: `{detail: "..."}`. */
export function detailError(status: number, detail: string | Record<string, unknown>, headers: Record<string, string> = {}): HttpError {
  const message = typeof detail === 'string' ? detail : JSON.stringify(detail);
  return new HttpError(status, message, () => ({ detail }), headers);
}

/** FastAPI RequestValidationError: 422 `{detail: [{loc, msg, type}]}`. */
export function validationError(issues: ValidationIssue[]): HttpError {
  return new HttpError(422, issues.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '), () => ({ detail: issues }));
}

export function bodyIssue(field: string | (string | number)[], msg: string, type = 'value_error'): ValidationIssue {
  const path = Array.isArray(field) ? field : [field];
  return { loc: ['body', ...path], msg, type };
}

/**
 * The backend's StructuredError. Where it sits is a simulator setting: the official SDK accepts
 * it at the top level (when `error_code` is there) or wrapped in FastAPI's `detail`.
 */
export function structuredError(init: StructuredErrorInit): HttpError {
  return new HttpError(
    init.status,
    init.message,
    (requestId, envelope) => {
      const structured = {
        error_code: init.errorCode,
        message: init.message,
        details: init.details ?? [],
        suggestions: init.suggestions ?? [],
        links: init.links ?? [],
        request_id: requestId,
      };
      return envelope === 'detail' ? { detail: structured } : structured;
    },
    init.headers ?? {},
  );
}

export const ERROR_CODES = {
  HASH_REGISTRATION_REQUIRED: 'ERR-01-005',
  HASH_INVALID_OR_EXPIRED: 'ERR-01-006',
  TX_VERIFICATION_FAILED: 'ERR-01-007',
  HASH_NOT_ALLOWED: 'ERR-01-008',
} as const;

export const DOCS_LINK = {
  label: 'Updating environment variables',
  url: 'https://docs.phala.com/phala-cloud/update/update-environment-variables',
};
