/**
 * The compose hash as the official SDKs compute it: sha256 over a canonical JSON serialisation
 * of `app-compose.json`. The CVM measures the exact bytes of the file it boots with, and the
 * backend's writer is not public, so callers compare this against the backend's `compose_hash`
 * under a policy rather than treating a mismatch as proof of tampering.
 *
 * Canonical form, matching `@phala/dstack-sdk` getComposeHash byte for byte on JSON data:
 * - object keys ordered recursively; compact (no whitespace); strings escaped as JSON.stringify does;
 * - NaN, Infinity and -Infinity become null;
 * - keys that are canonical array indices ("0", "12") come first in numeric order, the rest by
 *   UTF-16 code unit order. The JS SDK gets this from sorting into a plain object, which then
 *   enumerates index-like keys first; Python's sort_keys would not. app-compose keys are words,
 *   so this only matters for exotic documents, and then we side with the JS SDK.
 * - undefined, functions and symbols are dropped from objects and become null in arrays, and
 *   `toJSON` is honoured, as JSON.stringify does. BigInt throws, as JSON.stringify does.
 * Deliberate difference: objects that are not plain (null prototype, class instances) are
 * sorted too; the SDK serialises those in insertion order.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

export class ComposeHashError extends Error {
  override readonly name = 'ComposeHashError';
}

function isArrayIndex(key: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(key) && Number(key) <= 2 ** 32 - 2;
}

function compareKeys(a: string, b: string): number {
  const ai = isArrayIndex(a);
  const bi = isArrayIndex(b);
  if (ai && bi) return Number(a) - Number(b);
  if (ai !== bi) return ai ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Mirrors JSON.stringify's handling of values that have no JSON form. */
function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

function serialise(value: unknown, key: string, path: string, seen: Set<object>): string {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (k: string) => unknown }).toJSON(key);
  }
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'bigint':
      throw new ComposeHashError(`cannot serialise a BigInt at ${path}`);
    case 'object':
      break;
    default:
      return 'null';
  }
  const obj = value as object;
  if (seen.has(obj)) throw new ComposeHashError(`circular reference at ${path}`);
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      const parts = obj.map((item: unknown, i) => (isSkipped(item) ? 'null' : serialise(item, String(i), `${path}[${i}]`, seen)));
      return `[${parts.join(',')}]`;
    }
    // Boxed primitives serialise as their primitive, like JSON.stringify.
    if (obj instanceof String || obj instanceof Number || obj instanceof Boolean) {
      return serialise(obj.valueOf(), key, path, seen);
    }
    const record = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const k of Object.keys(record).sort(compareKeys)) {
      const v = record[k];
      if (isSkipped(v)) continue;
      parts.push(`${JSON.stringify(k)}:${serialise(v, k, `${path}.${k}`, seen)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}

/** The exact string whose UTF-8 bytes are hashed by {@link getComposeHash}. */
export function canonicalComposeJson(obj: unknown): string {
  if (isSkipped(obj)) throw new ComposeHashError('app compose must be a JSON value');
  return serialise(obj, '', '$', new Set());
}

/** sha256 of the canonical app-compose JSON, as lowercase hex without 0x. */
export function getComposeHash(appCompose: Record<string, unknown>): string {
  return bytesToHex(sha256(utf8ToBytes(canonicalComposeJson(appCompose))));
}
