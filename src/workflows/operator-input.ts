// What an operator's retry, abort and useTransaction may carry, read from anything: the UI's
// forms send plain JSON or nothing, old clients send what they like. Workflow-safe, no Node
// imports. Problems describe the shape of what came, never its content: a value pasted into
// the wrong field may be a secret (a private key has the same form as a transaction hash).

export const TX_HASH_FORM = '0x followed by 64 hex digits';
const TX_HASH = /^0x[0-9a-fA-F]{64}$/;
const MAX_REASON = 500;

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

export function isTransactionHash(v: unknown): v is string {
  return typeof v === 'string' && TX_HASH.test(v);
}

/** The kind of a value, safe to repeat in an error. */
export function shapeOf(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'string') return `a string of ${v.length} characters`;
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    return keys.length === 0 ? 'an empty object' : `an object with ${keys.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}`;
  }
  return `a ${typeof v}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{"transactionHash": "0x…"}`, or the hash alone. */
export function parseTransactionArg(arg: unknown): Parsed<string> {
  const candidate = isObject(arg) ? arg.transactionHash : arg;
  if (isTransactionHash(candidate)) {
    const extra = isObject(arg) ? Object.keys(arg).filter((k) => k !== 'transactionHash') : [];
    if (extra.length === 0) return { ok: true, value: candidate.toLowerCase() };
    return {
      ok: false,
      problem: `malformed argument: unknown field ${JSON.stringify(extra[0]!.slice(0, 40))}; expected {"transactionHash": "0x…"}`,
    };
  }
  const got = isObject(arg) && 'transactionHash' in arg ? `transactionHash was ${shapeOf(arg.transactionHash)}` : `got ${shapeOf(arg)}`;
  return { ok: false, problem: `malformed hash: expected {"transactionHash": "<${TX_HASH_FORM}>"}, ${got}` };
}

/** Nothing, `{}`, `{"reason": "…"}`, or the reason alone. */
export function parseAbortArg(arg: unknown): Parsed<{ reason?: string }> {
  if (arg === undefined || arg === null) return { ok: true, value: {} };
  const reason = isObject(arg) ? arg.reason : arg;
  if (isObject(arg)) {
    const extra = Object.keys(arg).filter((k) => k !== 'reason');
    if (extra.length > 0) {
      return {
        ok: false,
        problem: `malformed argument: unknown field ${JSON.stringify(extra[0]!.slice(0, 40))}; abort takes {"reason": "<text>"} or nothing`,
      };
    }
    if (reason === undefined || reason === null) return { ok: true, value: {} };
  }
  if (typeof reason !== 'string') {
    return {
      ok: false,
      problem: `malformed argument: abort takes {"reason": "<text>"} or nothing, got ${isObject(arg) ? `reason as ${shapeOf(reason)}` : shapeOf(arg)}`,
    };
  }
  const text = reason.trim();
  if (text.length > MAX_REASON)
    return { ok: false, problem: `malformed argument: the reason has ${text.length} characters, at most ${MAX_REASON}` };
  return { ok: true, value: text ? { reason: text } : {} };
}

/** Retry carries nothing; an empty object (what some forms send) is nothing too. */
export function parseRetryArg(arg: unknown): Parsed<void> {
  if (arg === undefined || arg === null || (isObject(arg) && Object.keys(arg).length === 0)) return { ok: true, value: undefined };
  return { ok: false, problem: `malformed argument: retry takes no argument, got ${shapeOf(arg)}` };
}
