/**
 * The ways a known writer turns an app-compose document into the bytes whose sha256 is the
 * compose hash. The backend's writer is not public, so the check of a 465's hash tries each of
 * these; the simulator can write with each, so the tests cover all of them.
 *
 * Writers covered (each verified against the real implementation in compose-serialisations.test.ts):
 * - `dstack-js`: @phala/dstack-sdk getComposeHash (re-exported by @phala/cloud): keys sorted,
 *   compact, JSON.stringify escaping;
 * - `phala-cloud`: @phala/cloud's compose-file getHash()/dumpAppCompose: keys sorted, 4-space
 *   indent, then every `": ` replaced by `":` (inside strings too, as the SDK does);
 * - `python`: Python's json.dumps with sort_keys on or off, compact or default separators, and
 *   ensure_ascii on (its default: non-ASCII escaped as \uXXXX) or off (the dstack Python SDK).
 * Separately (compose-hash-check.ts) each is tried on the document as served, after the SDKs'
 * preprocessing, and without fields set to null.
 */
import { canonicalComposeJson } from './compose-hash.ts';

export type ComposeDocument = Record<string, unknown>;

export interface ComposeSerialisation {
  /** Stable identifier, also the simulator's setting value. */
  name: string;
  serialise(doc: ComposeDocument): string;
}

function sortDeepJs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeepJs);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortDeepJs((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** @phala/cloud dumpAppCompose: sorted, indent 4, `": ` → `":` everywhere. */
export function phalaCloudDump(doc: ComposeDocument): string {
  return JSON.stringify(sortDeepJs(doc), null, 4).replace(/": /g, '":');
}

export interface PythonDumpsOptions {
  sortKeys: boolean;
  /** [item separator, key separator]: compact [',', ':'] or Python's default [', ', ': ']. */
  separators: readonly [string, string];
  ensureAscii: boolean;
}

// Python sorts str keys by code point; JS sort() compares UTF-16 units (differs above U+FFFF).
function byCodePoint(a: string, b: string): number {
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = ca[i]!.codePointAt(0)! - cb[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

const SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

function pyString(s: string, ensureAscii: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    const short = SHORT_ESCAPES[ch];
    if (short !== undefined) out += short;
    else if (code < 0x20 || (ensureAscii && code > 0x7e)) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function pyNumber(n: number): string {
  // Python writes NaN/Infinity literally unless told not to; the SDKs map them to null first.
  if (!Number.isFinite(n)) return 'null';
  return JSON.stringify(n);
}

/** Python json.dumps for JSON data (str, int, bool, None, list, dict). */
export function pythonJsonDumps(value: unknown, opts: PythonDumpsOptions): string {
  const [itemSep, keySep] = opts.separators;
  const walk = (v: unknown): string => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return pyString(v, opts.ensureAscii);
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'number') return pyNumber(v);
    if (Array.isArray(v)) return `[${v.map(walk).join(itemSep)}]`;
    if (typeof v === 'object') {
      const rec = v as Record<string, unknown>;
      const keys = Object.keys(rec).filter((k) => rec[k] !== undefined);
      if (opts.sortKeys) keys.sort(byCodePoint);
      return `{${keys.map((k) => `${pyString(k, opts.ensureAscii)}${keySep}${walk(rec[k])}`).join(itemSep)}}`;
    }
    return 'null';
  };
  return walk(value);
}

const COMPACT = [',', ':'] as const;
const PY_DEFAULT = [', ', ': '] as const;

function python(name: string, opts: PythonDumpsOptions): ComposeSerialisation {
  return { name, serialise: (doc) => pythonJsonDumps(doc, opts) };
}

/** Every serialisation the hash check tries, most likely first. */
export const COMPOSE_SERIALISATIONS: readonly ComposeSerialisation[] = [
  { name: 'dstack-js', serialise: canonicalComposeJson },
  { name: 'phala-cloud', serialise: phalaCloudDump },
  python('python-sorted-compact', { sortKeys: true, separators: COMPACT, ensureAscii: false }),
  python('python-sorted-compact-ascii', { sortKeys: true, separators: COMPACT, ensureAscii: true }),
  python('python-sorted', { sortKeys: true, separators: PY_DEFAULT, ensureAscii: false }),
  python('python-sorted-ascii', { sortKeys: true, separators: PY_DEFAULT, ensureAscii: true }),
  python('python-compact', { sortKeys: false, separators: COMPACT, ensureAscii: false }),
  python('python-compact-ascii', { sortKeys: false, separators: COMPACT, ensureAscii: true }),
  python('python', { sortKeys: false, separators: PY_DEFAULT, ensureAscii: false }),
  python('python-ascii', { sortKeys: false, separators: PY_DEFAULT, ensureAscii: true }),
];

export const COMPOSE_SERIALISATION_NAMES = COMPOSE_SERIALISATIONS.map((s) => s.name);

export function serialisationByName(name: string): ComposeSerialisation | undefined {
  return COMPOSE_SERIALISATIONS.find((s) => s.name === name);
}
