import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EnvValidationError,
  MAX_ENV_ITEMS,
  MAX_ENV_KEY_BYTES,
  MAX_ENV_TOTAL_BYTES,
  MAX_ENV_VALUE_BYTES,
  validateEnvVars,
  type EnvValidationIssue,
} from './env-validation.ts';

type Env = { key: string; value: string };

function issuesOf(envs: unknown): EnvValidationIssue[] {
  try {
    validateEnvVars(envs as Env[]);
  } catch (err) {
    assert.ok(err instanceof EnvValidationError);
    return [...err.issues];
  }
  return [];
}

const codes = (envs: unknown) => issuesOf(envs).map((i) => i.code);

test('valid input passes', () => {
  validateEnvVars([]);
  validateEnvVars([
    { key: 'A', value: '' },
    { key: '_private', value: 'x' },
    { key: 'snake_Case_9', value: 'héllo\nworld' },
  ]);
});

test('key names', () => {
  for (const key of ['A', 'a', '_', '_1', 'Z9_z']) assert.deepEqual(codes([{ key, value: '' }]), [], key);
  for (const key of ['', '1A', 'A-B', 'A.B', 'A B', 'É', 'A=B', ' A', 'A\n']) {
    assert.deepEqual(codes([{ key, value: '' }]), ['invalid_key'], JSON.stringify(key));
  }
});

test('key length: 255 bytes passes, 256 fails (bytes, not characters)', () => {
  assert.deepEqual(codes([{ key: 'K'.repeat(MAX_ENV_KEY_BYTES), value: '' }]), []);
  const [issue] = issuesOf([{ key: 'K'.repeat(MAX_ENV_KEY_BYTES + 1), value: '' }]);
  assert.equal(issue?.code, 'key_too_long');
  assert.equal(issue?.index, 0);
  assert.ok(issue?.message.includes('256 bytes'));
  // 128 two-byte characters: 128 chars but 256 bytes; reported as invalid name AND too long.
  assert.deepEqual(codes([{ key: 'é'.repeat(128), value: '' }]), ['invalid_key', 'key_too_long']);
});

test('value size: 131072 bytes passes, 131073 fails', () => {
  assert.deepEqual(codes([{ key: 'V', value: 'x'.repeat(MAX_ENV_VALUE_BYTES) }]), []);
  assert.deepEqual(codes([{ key: 'V', value: 'x'.repeat(MAX_ENV_VALUE_BYTES + 1) }]), ['value_too_long']);
  // Multi-byte: 65536 × 'é' is exactly 131072 bytes; one more ASCII byte tips it over.
  assert.deepEqual(codes([{ key: 'V', value: 'é'.repeat(65536) }]), []);
  assert.deepEqual(codes([{ key: 'V', value: `${'é'.repeat(65536)}x` }]), ['value_too_long']);
});

test('item count: 1024 passes, 1025 fails', () => {
  const make = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `K${i}`, value: '' }));
  assert.deepEqual(codes(make(MAX_ENV_ITEMS)), []);
  assert.deepEqual(codes(make(MAX_ENV_ITEMS + 1)), ['too_many_items']);
});

test('total size (keys + values): 1 MiB passes, one byte more fails', () => {
  // Eight 1-byte keys; the values fill the rest, none over the per-value cap.
  const exact: Env[] = [];
  let left = MAX_ENV_TOTAL_BYTES;
  for (let i = 0; i < 8; i++) {
    const key = String.fromCharCode(65 + i);
    const value = 'x'.repeat(Math.min(MAX_ENV_VALUE_BYTES, left - 1));
    exact.push({ key, value });
    left -= 1 + value.length;
  }
  assert.equal(
    exact.reduce((n, e) => n + e.key.length + e.value.length, 0),
    MAX_ENV_TOTAL_BYTES,
  );
  assert.deepEqual(codes(exact), []);
  const over = exact.map((e) => ({ ...e }));
  over.push({ key: 'Z', value: '' });
  assert.deepEqual(codes(over), ['total_too_large']);
});

test('duplicate keys are reported with both positions', () => {
  const issues = issuesOf([
    { key: 'A', value: '1' },
    { key: 'B', value: '2' },
    { key: 'A', value: '3' },
  ]);
  assert.equal(issues.length, 1);
  assert.equal(issues[0]?.code, 'duplicate_key');
  assert.equal(issues[0]?.key, 'A');
  assert.equal(issues[0]?.index, 2);
  assert.match(issues[0]?.message ?? '', /envs\[2\] "A".*envs\[0\]/);
  // Keys are case-sensitive, as environment variables are.
  assert.deepEqual(
    codes([
      { key: 'a', value: '' },
      { key: 'A', value: '' },
    ]),
    [],
  );
});

test('every violation is listed, not just the first', () => {
  const envs = [
    { key: '1BAD', value: '' },
    { key: 'OK', value: 'x'.repeat(MAX_ENV_VALUE_BYTES + 1) },
    { key: 'OK', value: '' },
    { key: 'K'.repeat(300), value: '' },
    { key: 7, value: 'v' },
    { key: 'NOVALUE' },
    null,
  ];
  const issues = issuesOf(envs);
  assert.deepEqual(
    issues.map((i) => [i.code, i.index]),
    [
      ['invalid_key', 0],
      ['value_too_long', 1],
      ['duplicate_key', 2],
      ['key_too_long', 3],
      ['invalid_item', 4],
      ['invalid_item', 5],
      ['invalid_item', 6],
    ],
  );
  let err: unknown;
  try {
    validateEnvVars(envs as Env[]);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof EnvValidationError);
  assert.equal(err.name, 'EnvValidationError');
  assert.match(err.message, /7 problems/);
  assert.equal(err.message.split('\n').length, 8);
  assert.deepEqual(codes('not an array'), ['not_an_array']);
});

test('messages never contain values, and bad keys are shown only as a short safe prefix', () => {
  const SECRET = 'hunter2-very-secret';
  const envs = [
    { key: `DB_PASSWORD=${SECRET}`, value: SECRET },
    { key: `${'A'.repeat(40)} ${SECRET}`, value: 'x'.repeat(MAX_ENV_VALUE_BYTES + 1) + SECRET },
    { key: `=${SECRET}`, value: SECRET },
    { key: 'GOOD', value: SECRET.repeat(10_000) },
  ];
  let err: unknown;
  try {
    validateEnvVars(envs);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof EnvValidationError);
  const text = `${err.message}\n${JSON.stringify(err.issues)}\n${String(err)}`;
  assert.ok(!text.includes('hunter2'), text);
  assert.ok(!text.includes('x'.repeat(50)), 'no value content');
  assert.match(err.message, /envs\[0\]: key starting "DB_PASSWORD" has a character not allowed .* position 11/);
  assert.match(err.message, /envs\[1\]: key starting "A{32}…"/);
  assert.match(err.message, /envs\[1\]: value is 131092 bytes/);
  assert.match(err.message, /envs\[2\]: key must start with a letter/);
  assert.match(err.message, /envs\[3\] "GOOD": value is 190000 bytes/);
  for (const issue of err.issues.filter((i) => i.index !== 3)) assert.equal(issue.key, undefined);
});
