import { BaseError, HttpRequestError, TimeoutError } from 'viem';

/**
 * What kind of failure a chain call hit, so an activity can map it onto DESIGN.md §5:
 * retryable codes become ordinary activity retries; the rest fail the attempt for good
 * (invalid input, configuration) or need an operator.
 */
export type ChainErrorCode =
  /** The RPC endpoint could not be reached, timed out, or rate-limited us. */
  | 'RPC_UNAVAILABLE'
  /** The node answered with an error we have no better name for. */
  | 'RPC_ERROR'
  | 'INVALID_INPUT'
  | 'CONFIG'
  /** Gas estimation reverted: the call as signed would fail on chain. */
  | 'WOULD_REVERT'
  /** A fee bump would pass the configured ceiling: spending more needs a human. */
  | 'FEE_CAP_EXCEEDED'
  /** The node disagrees with bytes we computed ourselves; never retried blindly. */
  | 'INCONSISTENT';

const RETRYABLE: Record<ChainErrorCode, boolean> = {
  RPC_UNAVAILABLE: true,
  RPC_ERROR: true,
  INVALID_INPUT: false,
  CONFIG: false,
  WOULD_REVERT: false,
  FEE_CAP_EXCEEDED: false,
  INCONSISTENT: false,
};

export class ChainError extends Error {
  override name = 'ChainError';
  readonly code: ChainErrorCode;
  readonly retryable: boolean;

  constructor(code: ChainErrorCode, message: string) {
    // Every message passes through the redactor: RPC URLs often embed provider API keys.
    super(redactUrls(message));
    this.code = code;
    this.retryable = RETRYABLE[code];
  }
}

const URL_RE = /\b(https?|wss?):\/\/[^\s"'<>`,]+/gi;

/**
 * Keeps scheme, host and port of every URL in a text and hides the rest: providers put
 * API keys in the path (`/v2/<key>`), the query or the user-info part.
 */
export function redactUrls(text: string): string {
  return text.replace(URL_RE, (match) => {
    let url: URL;
    try {
      url = new URL(match);
    } catch {
      return '<url>';
    }
    const hidden =
      url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '');
    return `${url.protocol}//${url.host}${hidden ? '/…' : ''}`;
  });
}

/** The node's own words for a JSON-RPC error (e.g. "nonce too low"), if the error carries them. */
export function nodeMessageOf(err: unknown): string | undefined {
  if (!(err instanceof BaseError)) return undefined;
  const rpc = err.walk(
    (e) => typeof (e as { code?: unknown }).code === 'number' && typeof (e as { details?: unknown }).details === 'string',
  );
  const details = (rpc as { details?: string } | null)?.details;
  return details && details.length > 0 ? details : undefined;
}

function isTransportFailure(err: unknown): boolean {
  if (!(err instanceof BaseError)) {
    return err instanceof Error && /ECONNREFUSED|ECONNRESET|ETIMEDOUT|fetch failed|socket hang up/i.test(err.message);
  }
  if (err.walk((e) => e instanceof TimeoutError)) return true;
  const http = err.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null;
  if (http) return http.status === undefined || http.status === 429 || http.status >= 500;
  const code = (err.walk((e) => typeof (e as { code?: unknown }).code === 'number') as { code?: number } | null)?.code;
  // -32005 limit exceeded, 429 in-body rate limits, -32007 QuickNode's rate limit.
  return code === -32005 || code === 429 || code === -32007;
}

/**
 * Wraps whatever an RPC call threw into a ChainError with a one-line, redacted message.
 * viem's own messages span many lines and repeat the request URL and body.
 */
export function toChainError(err: unknown, context: string): ChainError {
  if (err instanceof ChainError) return err;
  let summary: string;
  if (err instanceof BaseError) {
    const node = nodeMessageOf(err);
    summary = node && !err.shortMessage.includes(node) ? `${err.shortMessage} (${node})` : err.shortMessage;
  } else if (err instanceof Error) {
    summary = err.message;
  } else {
    summary = String(err);
  }
  summary = summary.replace(/\s*\n\s*/g, ' ').trim();
  return new ChainError(isTransportFailure(err) ? 'RPC_UNAVAILABLE' : 'RPC_ERROR', `${context}: ${summary}`);
}

/** Runs an RPC-backed step and rethrows anything but a ChainError as one. */
export async function withChainErrors<T>(context: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toChainError(err, context);
  }
}
