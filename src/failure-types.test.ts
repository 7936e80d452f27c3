// The catalogue is the only place failure types are decided: every type thrown in src/ is in it,
// and the lists that retry policies use keep their recorded values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { apiFailure, invalidInput } from './activities/failures.ts';
import { chainCall } from './activities/chain-activities.ts';
import { ChainError, type ChainErrorCode } from './chain/errors.ts';
import { PhalaApiError, type PhalaApiErrorKind } from './phala/api-errors.ts';
import {
  apiFailureType,
  CONFIG_FAILURES,
  FAILURE,
  FAILURE_TYPES,
  FINAL_FAILURES,
  handlingOf,
  isFailureType,
  type FailureType,
} from './failure-types.ts';

const SRC = fileURLToPath(new URL('.', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Where the string literal that opens at `i` ends (just past its closing quote); templates may nest. */
function skipString(text: string, i: number): number {
  const quote = text[i];
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (c === '\\') j++;
    else if (c === quote) return j + 1;
    else if (quote === '`' && c === '$' && text[j + 1] === '{') j = skipBalanced(text, j + 1) - 1;
  }
  throw new Error('unterminated string');
}

/** Where the bracket that opens at `open` is closed (just past it), skipping strings. */
function skipBalanced(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = skipString(text, i) - 1;
    } else if ('({['.includes(c)) depth++;
    else if (')}]'.includes(c)) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new Error('unbalanced brackets');
}

/** The text inside the parentheses that open at `open`. */
function argsAt(text: string, open: number): string {
  return text.slice(open + 1, skipBalanced(text, open) - 1);
}

/** Top-level comma-separated parts. */
function topLevel(args: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < args.length; i++) {
    const c = args[i]!;
    if (c === "'" || c === '"' || c === '`') i = skipString(args, i) - 1;
    else if ('({['.includes(c)) i = skipBalanced(args, i) - 1;
    else if (c === ',') {
      parts.push(args.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(args.slice(start).trim());
  return parts.filter(Boolean);
}

/** A type expression resolved to the catalogue's name, or why it cannot be. */
function resolveType(expr: string): FailureType | 'computed' | { unknown: string } {
  const constant = /^FAILURE\.(\w+)$/.exec(expr);
  if (constant) return isFailureType(constant[1]) ? constant[1] : { unknown: expr };
  const literal = /^'([^']*)'$/.exec(expr);
  if (literal) return isFailureType(literal[1]) ? literal[1] : { unknown: expr };
  // Mapped through the catalogue's own functions (their tables are checked below), or a constant defined from FAILURE.
  if (/^(apiFailureType|chainFailureType)\(/.test(expr) || expr === 'REGISTRATION_REVERTED') return 'computed';
  return { unknown: expr };
}

test('every failure type thrown in src/ is in the catalogue, with matching retryability', () => {
  const problems: string[] = [];
  let calls = 0;
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const where = relative(SRC, file);
    for (const m of text.matchAll(/ApplicationFailure\.(nonRetryable|retryable|create)\s*\(/g)) {
      calls++;
      const args = topLevel(argsAt(text, m.index + m[0].length - 1));
      let typeExpr: string | undefined;
      let retryable: boolean | undefined;
      if (m[1] === 'create') {
        const body = args[0] ?? '';
        const props = topLevel(body.replace(/^\{|\}$/g, ''));
        typeExpr = props
          .find((p) => p.startsWith('type:'))
          ?.slice(5)
          .trim();
        const nr = props
          .find((p) => p.startsWith('nonRetryable:'))
          ?.slice(13)
          .trim();
        retryable = nr === undefined ? true : nr === 'true' ? false : nr === 'false' ? true : undefined;
      } else {
        typeExpr = args[1];
        retryable = m[1] === 'retryable';
      }
      if (typeExpr === undefined) {
        problems.push(`${where}: ApplicationFailure.${m[1]} without a type`);
        continue;
      }
      const t = resolveType(typeExpr);
      if (typeof t === 'object') {
        problems.push(`${where}: failure type ${t.unknown} is not in the catalogue (src/failure-types.ts)`);
        continue;
      }
      if (t === 'computed' || retryable === undefined) continue;
      const handling = FAILURE_TYPES[t].handling;
      if (retryable && handling !== 'retried') problems.push(`${where}: ${t} is thrown retryable but catalogued as '${handling}'`);
      if (!retryable && handling === 'retried') problems.push(`${where}: ${t} is thrown non-retryable but catalogued as retried`);
    }
    // A type compared by string must be one the catalogue knows.
    for (const m of text.matchAll(/\b(?:err|error|cause|failure|e)\.type\s*[!=]==\s*'([^']+)'/g)) {
      if (!isFailureType(m[1])) problems.push(`${where}: compares a failure type with '${m[1]}', not in the catalogue`);
    }
  }
  assert.ok(calls >= 15, `only ${calls} ApplicationFailure calls found: the scan is broken`);
  assert.deepEqual(problems, []);
});

test('the scan itself catches a type outside the catalogue', () => {
  assert.deepEqual(resolveType("'Whatever'"), { unknown: "'Whatever'" });
  assert.deepEqual(resolveType('FAILURE.Nope'), { unknown: 'FAILURE.Nope' });
  assert.deepEqual(resolveType('`Api_${kind}`'), { unknown: '`Api_${kind}`' });
  assert.equal(resolveType('FAILURE.InvalidInput'), 'InvalidInput');
});

test('the retry-policy lists keep their recorded values', () => {
  // Part of every recorded ScheduleActivityTask: the order matters as much as the members.
  assert.deepEqual(FINAL_FAILURES, ['InvalidInput', 'ApiRejected']);
  assert.deepEqual(CONFIG_FAILURES, ['NoSigner', 'SignerMismatch', 'ChainNotConfigured']);
});

test('each constant is its own name, and every entry has a handling and a meaning', () => {
  for (const [name, info] of Object.entries(FAILURE_TYPES)) {
    assert.equal(FAILURE[name as FailureType], name);
    assert.ok(['ends', 'operator', 'retried', 'refused'].includes(info.handling), name);
    assert.ok(info.meaning.length > 10, name);
  }
  assert.equal(handlingOf('InvalidInput'), 'ends');
  assert.equal(handlingOf('Aborted'), 'ends');
  assert.equal(handlingOf('NoSigner'), 'operator');
  assert.equal(handlingOf('RateLimited'), 'retried');
  assert.equal(handlingOf('SomethingElse'), 'retried');
  assert.equal(handlingOf(undefined), 'retried');
});

const API_KINDS: PhalaApiErrorKind[] = [
  'transient',
  'conflict',
  'rate_limited',
  'hash_expired',
  'tx_not_verified',
  'hash_not_allowed',
  'auth',
  'not_found',
  'invalid',
  'bad_response',
];

test('every API error kind becomes a catalogued failure, retried exactly when the catalogue says so', () => {
  for (const kind of API_KINDS) {
    const failure = apiFailure(new PhalaApiError({ kind, message: 'm', status: 500 }), 'GET /x');
    assert.ok(failure instanceof ApplicationFailure, kind);
    assert.equal(failure.type, apiFailureType(kind), kind);
    assert.ok(isFailureType(failure.type), `${kind} → ${failure.type}`);
    const handling = handlingOf(failure.type);
    assert.equal(failure.nonRetryable, handling !== 'retried', `${kind}: nonRetryable ${failure.nonRetryable}, catalogued ${handling}`);
  }
  const bad = invalidInput('x');
  assert.equal(bad.type, 'InvalidInput');
  assert.equal(bad.nonRetryable, true);
});

test('every chain error code that is not retried becomes a catalogued, non-retryable failure', async () => {
  const codes: ChainErrorCode[] = [
    'RPC_UNAVAILABLE',
    'RPC_ERROR',
    'INVALID_INPUT',
    'CONFIG',
    'WOULD_REVERT',
    'FEE_CAP_EXCEEDED',
    'INCONSISTENT',
  ];
  for (const code of codes) {
    const err = new ChainError(code, 'm');
    const thrown = await chainCall(() => Promise.reject(err)).then(
      () => assert.fail('no throw'),
      (e: unknown) => e,
    );
    if (err.retryable) {
      assert.equal(thrown, err, `${code} stays a plain, retried error`);
      continue;
    }
    assert.ok(thrown instanceof ApplicationFailure, code);
    assert.equal(thrown.type, `Chain_${code}`);
    assert.ok(isFailureType(thrown.type), code);
    assert.equal(thrown.nonRetryable, true);
    assert.equal(handlingOf(thrown.type), 'operator');
  }
});
