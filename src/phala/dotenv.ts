/**
 * `.env` parsing that yields exactly what the official `@phala/cloud` `parseEnvVars` yields.
 *
 * The official SDK uses the classic dotenv line regex. Users paste the same file into the
 * Phala dashboard, the `phala` CLI and our service; if two tools read one file differently the
 * CVM silently gets different env values. So this is a hand-written scanner that reproduces the
 * regex's backtracking outcome case by case (the reasoning for each step is noted inline), and
 * `dotenv.test.ts` checks it against the SDK on a corpus and a seeded fuzz.
 *
 * Behaviours inherited on purpose because the SDK has them:
 * - Whitespace skipping is not line-bound: `KEY\n=value`, `export\nKEY=v` and `KEY:\nvalue`
 *   each produce one variable.
 * - A quoted value that is not followed by end of line or a comment falls back to the
 *   unquoted reading (`A='x' y` gives `'x' y`, quotes kept).
 * - A later duplicate wins but keeps the FIRST occurrence's position.
 * - Keys that are canonical array indices ("0", "7", "42") come first, in numeric order.
 * - The key `__proto__` is dropped.
 * The last three fall out of the SDK collecting into a plain object; validation rejects such
 * keys anyway except `__proto__`, which silently disappears.
 */

export interface EnvVar {
  key: string;
  value: string;
}

// JavaScript's `\s`, which is what dotenv's regex skips; kept as a set for a per-char test.
const WS = /\s/;
const isWs = (c: string | undefined): boolean => c !== undefined && WS.test(c);

// Line terminators as ECMAScript regex `^`, `$` and `.` see them. CR is gone after
// normalisation, but quote stripping runs on substrings and keeps the full set for safety.
const isLineTerminator = (c: string | undefined): boolean => c === '\n' || c === '\r' || c === '\u2028' || c === '\u2029';

const isKeyChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_.-]/.test(c);

const isQuote = (c: string | undefined): c is "'" | '"' | '`' => c === "'" || c === '"' || c === '`';

function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s[i])) i++;
  return i;
}

function isLineStart(s: string, i: number): boolean {
  return i === 0 || isLineTerminator(s[i - 1]);
}

interface Entry {
  key: string;
  rawValue: string;
  end: number;
}

/**
 * What may follow a value: whitespace, an optional `#` comment, then end of line.
 * Returns where such a tail ends, or -1 if the text after `from` is not a valid tail.
 * The whitespace run may cross newlines; when it is not followed by `#` or end of input the
 * tail ends at the last line break inside the run, the only place a line end can still match.
 */
function tailEnd(s: string, from: number): number {
  const e = skipWs(s, from);
  if (e === s.length) return e;
  if (s[e] === '#') {
    let j = e;
    while (j < s.length && !isLineTerminator(s[j])) j++;
    return j;
  }
  for (let j = e - 1; j >= from; j--) {
    if (isLineTerminator(s[j])) return j;
  }
  return -1;
}

/**
 * Positions where a quoted value opened at `open` may close, in the order the regex tries them:
 * first the first quote not preceded by a backslash, then each backslash-escaped quote before it,
 * last one first (a `\` may also stand alone, letting the quote after it close the value).
 */
function closingCandidates(s: string, open: number, quote: string): number[] {
  const escaped: number[] = [];
  let i = open + 1;
  let first = -1;
  while (i < s.length) {
    if (s[i] === '\\' && s[i + 1] === quote) {
      escaped.push(i + 1);
      i += 2;
    } else if (s[i] === quote) {
      first = i;
      break;
    } else {
      i++;
    }
  }
  escaped.reverse();
  return first >= 0 ? [first, ...escaped] : escaped;
}

/** Value and tail starting at `start` (just after the separator). This reading always exists. */
function readValue(s: string, start: number): { raw: string; end: number } {
  const open = skipWs(s, start);
  const quote = s[open];
  if (isQuote(quote)) {
    for (const close of closingCandidates(s, open, quote)) {
      const end = tailEnd(s, close + 1);
      if (end >= 0) return { raw: s.slice(start, close + 1), end };
    }
  }
  // Unquoted: everything up to `#` or a newline. That run always ends where a tail fits, so the
  // regex never has to give characters back.
  let stop = start;
  while (stop < s.length && s[stop] !== '#' && s[stop] !== '\n' && s[stop] !== '\r') stop++;
  // With an empty run, `start` sits at `#`, a newline or end of input: all valid tails.
  const end = tailEnd(s, stop);
  return { raw: s.slice(start, stop), end: end >= 0 ? end : stop };
}

/** Key, separator and value from `keyStart`; null if there is no key followed by a separator. */
function readAssignment(s: string, keyStart: number): Entry | null {
  let keyEnd = keyStart;
  while (isKeyChar(s[keyEnd])) keyEnd++;
  if (keyEnd === keyStart) return null;
  let valueStart: number;
  if (s[keyEnd] === ':') {
    // `KEY:` needs at least one whitespace character, which is consumed (even a newline).
    if (!isWs(s[keyEnd + 1])) return null;
    valueStart = keyEnd + 2;
  } else {
    const eq = skipWs(s, keyEnd);
    if (s[eq] !== '=') return null;
    valueStart = eq + 1;
  }
  const { raw, end } = readValue(s, valueStart);
  return { key: s.slice(keyStart, keyEnd), rawValue: raw, end };
}

function readEntryAt(s: string, lineStart: number): Entry | null {
  const q = skipWs(s, lineStart);
  if (s.startsWith('export', q) && isWs(s[q + 6])) {
    const withExport = readAssignment(s, skipWs(s, q + 6));
    if (withExport) return withExport;
  }
  // `export` may itself be the key (`export=1`), or the prefix of one (`exporter=1`).
  return readAssignment(s, q);
}

/**
 * Strips one pair of matching surrounding quotes per line-anchored run: at every line start in
 * the value that holds a quote character, everything up to the LAST same quote that ends a line
 * (or the value) loses its two quotes.
 */
function stripQuotes(v: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < v.length) {
    const c = v[i];
    if (isQuote(c) && isLineStart(v, i)) {
      let close = -1;
      for (let j = v.length - 1; j > i; j--) {
        if (v[j] === c && (j + 1 === v.length || isLineTerminator(v[j + 1]))) {
          close = j;
          break;
        }
      }
      if (close !== -1) {
        out += v.slice(copied, i) + v.slice(i + 1, close);
        copied = close + 1;
        i = close + 1;
        continue;
      }
    }
    i++;
  }
  return out + v.slice(copied);
}

function cookValue(raw: string): string {
  const trimmed = raw.trim();
  let value = stripQuotes(trimmed);
  if (trimmed[0] === '"') {
    value = value.replaceAll('\\n', '\n').replaceAll('\\r', '\r');
  }
  return value;
}

// Canonical array index per ECMAScript: such keys enumerate first, ascending, on plain objects.
function arrayIndex(key: string): number | null {
  if (!/^(0|[1-9][0-9]*)$/.test(key)) return null;
  const n = Number(key);
  return n <= 2 ** 32 - 2 ? n : null;
}

/** Parses dotenv text into variables, in the order and with the values the official SDK gives. */
export function parseEnvVars(text: string): EnvVar[] {
  const s = text.replace(/\r\n?/g, '\n');
  const values = new Map<string, string>();
  let from = 0;
  for (;;) {
    let entry: Entry | null = null;
    for (let p = from; p < s.length && entry === null; p++) {
      if (isLineStart(s, p)) entry = readEntryAt(s, p);
    }
    if (entry === null) break;
    // Assigning `__proto__` on a plain object with a string is a no-op in the SDK.
    if (entry.key !== '__proto__') values.set(entry.key, cookValue(entry.rawValue));
    from = entry.end;
  }
  const indexed: [number, EnvVar][] = [];
  const named: EnvVar[] = [];
  for (const [key, value] of values) {
    const idx = arrayIndex(key);
    if (idx === null) named.push({ key, value });
    else indexed.push([idx, { key, value }]);
  }
  indexed.sort((a, b) => a[0] - b[0]);
  return [...indexed.map(([, v]) => v), ...named];
}
