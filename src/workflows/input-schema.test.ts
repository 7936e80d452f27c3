import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_ENV_ITEMS, MAX_ENV_TOTAL_BYTES, MAX_ENV_VALUE_BYTES, utf8Bytes } from '../phala/env-validation.ts';
import {
  checkUpdateEnvInput,
  describeInputProblems,
  MAX_CONFIRMATIONS,
  MAX_CVM_ID_LENGTH,
  MAX_REQUEST_ID_LENGTH,
  type InputProblem,
} from './input-schema.ts';

const secret = () => `s3cr3t-${randomBytes(8).toString('hex')}`;
const ok = { cvmId: 'cvm_0123abcd', env: { A: 'one' } };

function problems(input: unknown): InputProblem[] {
  const r = checkUpdateEnvInput(input);
  assert.equal(r.ok, false, 'the input was accepted');
  return r.ok ? [] : r.problems;
}

/** The single problem of an input, as field and message. */
function only(input: unknown): InputProblem {
  const p = problems(input);
  assert.equal(p.length, 1, JSON.stringify(p));
  return p[0]!;
}

test('a good input comes back with the env as a list and its keys', () => {
  const r = checkUpdateEnvInput({ ...ok, env: { B: '2', A: '1' }, confirmations: 3, composeHashPolicy: 'warn', requestId: 'req-1:a.b_c' });
  assert.ok(r.ok);
  assert.deepEqual(r.value.env, [
    { key: 'B', value: '2' },
    { key: 'A', value: '1' },
  ]);
  assert.deepEqual(r.value.envKeys, ['B', 'A']);
  assert.equal(r.value.confirmations, 3);
  assert.equal(r.value.composeHashPolicy, 'warn');
  const list = checkUpdateEnvInput({ ...ok, env: [{ key: 'X', value: '' }], allowedKeys: ['X', 'Y', 'X'], waitForApplied: false });
  assert.ok(list.ok);
  assert.deepEqual(list.value.envKeys, ['X', 'Y']);
  assert.equal(list.value.waitForApplied, false);
});

test('every CVM id form the API hands out is accepted', () => {
  for (const cvmId of [
    'cvm_0123abcd',
    '4711',
    'my-app-1',
    '5b2a6c1e-9d3f-4a8b-8c7d-0e1f2a3b4c5d',
    '5b2a6c1e9d3f4a8b8c7d0e1f2a3b4c5d',
    `app_${'ab'.repeat(20)}`,
    `instance_${'cd'.repeat(20)}`,
    `0x${'ef'.repeat(20)}`,
    'x'.repeat(MAX_CVM_ID_LENGTH),
  ]) {
    assert.ok(checkUpdateEnvInput({ ...ok, cvmId }).ok, cvmId);
  }
});

test('cvmId: empty, missing, "..", "/", whitespace, other characters and over-long ids are refused', () => {
  for (const cvmId of ['', undefined, 42]) {
    assert.deepEqual(only({ ...ok, cvmId }), { field: 'cvmId', message: 'cvmId is required (a string)' });
  }
  for (const cvmId of ['..', '.', 'a/b', '../envs', 'cvm 1', ' cvm', 'cvm\n', 'a%2e', 'a?b', '-lead', '_lead']) {
    const p = only({ ...ok, cvmId });
    assert.equal(p.field, 'cvmId');
    assert.match(p.message, /^cvmId must be a CVM id: letters, digits, '_' and '-', starting with a letter or digit/);
  }
  assert.deepEqual(only({ ...ok, cvmId: 'x'.repeat(MAX_CVM_ID_LENGTH + 1) }), {
    field: 'cvmId',
    message: `cvmId is ${MAX_CVM_ID_LENGTH + 1} characters; at most ${MAX_CVM_ID_LENGTH} are allowed`,
  });
});

test("composeHashPolicy: only 'strict', 'warn' and 'off'; 'STRICT' or a typo is refused, not taken as warn", () => {
  for (const composeHashPolicy of ['STRICT', 'Warn', 'lenient', '', 1, null]) {
    assert.deepEqual(only({ ...ok, composeHashPolicy }), {
      field: 'composeHashPolicy',
      message: "composeHashPolicy must be 'strict', 'warn', 'off' (lower case)",
    });
  }
  for (const composeHashPolicy of ['strict', 'warn', 'off']) assert.ok(checkUpdateEnvInput({ ...ok, composeHashPolicy }).ok);
});

test(`confirmations: an integer from 1 to ${MAX_CONFIRMATIONS}`, () => {
  for (const confirmations of [0, -1, 1.5, MAX_CONFIRMATIONS + 1, 1e9]) {
    assert.deepEqual(only({ ...ok, confirmations }), {
      field: 'confirmations',
      message: `confirmations must be an integer from 1 to ${MAX_CONFIRMATIONS} (got ${confirmations})`,
    });
  }
  for (const confirmations of ['3', Number.NaN, Infinity, null]) {
    assert.deepEqual(only({ ...ok, confirmations }), {
      field: 'confirmations',
      message: `confirmations must be an integer from 1 to ${MAX_CONFIRMATIONS}`,
    });
  }
  for (const confirmations of [1, 12, MAX_CONFIRMATIONS]) assert.ok(checkUpdateEnvInput({ ...ok, confirmations }).ok);
});

test('requestId: letters, digits, ".", "_", ":" and "-", at most 200, no spaces', () => {
  for (const requestId of ['has space', 'tab\there', 'a/b', 'a@b', '-lead', 'ünï']) {
    assert.deepEqual(only({ ...ok, requestId }), {
      field: 'requestId',
      message: "requestId may hold only letters, digits, '.', '_', ':' and '-', starting with a letter or digit (no spaces)",
    });
  }
  assert.deepEqual(only({ ...ok, requestId: '' }), { field: 'requestId', message: 'requestId must not be empty' });
  assert.deepEqual(only({ ...ok, requestId: 7 }), { field: 'requestId', message: 'requestId must be a string' });
  assert.deepEqual(only({ ...ok, requestId: 'r'.repeat(MAX_REQUEST_ID_LENGTH + 1) }), {
    field: 'requestId',
    message: `requestId is ${MAX_REQUEST_ID_LENGTH + 1} characters; at most ${MAX_REQUEST_ID_LENGTH} are allowed`,
  });
  // The ids a rollout gives its children.
  assert.ok(checkUpdateEnvInput({ ...ok, requestId: `rollout-${'r'.repeat(30)}-cvm_0123abcd-retry2` }).ok);
});

test('env: required, values strings, keys valid, within the documented limits, values never shown', () => {
  assert.deepEqual(only({ cvmId: 'x' }), { field: 'env', message: 'env is required: an object of KEY: value, or a list of {key, value}' });
  assert.deepEqual(only({ ...ok, env: {} }), { field: 'env', message: 'env: at least one variable is required' });
  assert.deepEqual(only({ ...ok, env: { A: 5 } }), { field: 'env', message: 'env.A must be a string' });

  const v = secret();
  const bad = problems({ ...ok, env: { '1BAD': v, 'GOOD-NOT': v, FINE: v } });
  assert.deepEqual(
    bad.map((p) => p.field),
    ['env[0]', 'env[1]'],
  );
  assert.match(bad[0]!.message, /^env: envs\[0\]: key "1BAD" must start with a letter or "_"/);
  assert.match(bad[1]!.message, /^env: envs\[1\]: key starting "GOOD" has a character not allowed/);

  const big = 'v'.repeat(MAX_ENV_VALUE_BYTES + 1);
  const tooLong = only({ ...ok, env: { HUGE: big } });
  assert.equal(tooLong.field, 'env[0]');
  assert.equal(
    tooLong.message,
    `env: envs[0] "HUGE": value is ${MAX_ENV_VALUE_BYTES + 1} bytes; at most ${MAX_ENV_VALUE_BYTES} are allowed`,
  );

  const many = Object.fromEntries(Array.from({ length: MAX_ENV_ITEMS + 1 }, (_, i) => [`K${i}`, 'x']));
  assert.deepEqual(only({ ...ok, env: many }), {
    field: 'env',
    message: `env: ${MAX_ENV_ITEMS + 1} env vars; at most ${MAX_ENV_ITEMS} are allowed`,
  });

  const chunk = 'w'.repeat(MAX_ENV_VALUE_BYTES);
  const total = only({ ...ok, env: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`T${i}`, chunk])) });
  assert.equal(total.field, 'env');
  assert.match(total.message, new RegExp(`^env: env vars total \\d+ bytes \\(keys \\+ values\\); at most ${MAX_ENV_TOTAL_BYTES}`));

  const dup = only({
    ...ok,
    env: [
      { key: 'A', value: v },
      { key: 'A', value: v },
    ],
  });
  assert.equal(dup.message, 'env: envs[1] "A": duplicate key, first given at envs[0]');

  const all = JSON.stringify([bad, dup, problems({ ...ok, env: { [`${v}=x`]: v } })]);
  assert.ok(!all.includes(v), 'a value reached a message');
});

test('allowedKeys: a list of valid names that covers the env; bad entries are not echoed', () => {
  assert.deepEqual(only({ ...ok, allowedKeys: 'A' }), { field: 'allowedKeys', message: 'allowedKeys must be a list of env names' });
  const v = secret();
  assert.deepEqual(only({ ...ok, allowedKeys: ['A', `X=${v}`] }), {
    field: 'allowedKeys[1]',
    message: "allowedKeys[1] is not a valid env name (letters, digits, '_', not starting with a digit)",
  });
  assert.deepEqual(only({ ...ok, env: { A: '1', B: '2' }, allowedKeys: ['A'] }), {
    field: 'allowedKeys',
    message: 'allowedKeys must include every env key; missing: B',
  });
  const tooMany = problems({ ...ok, allowedKeys: ['A', ...Array.from({ length: MAX_ENV_ITEMS }, (_, i) => `K${i}`)] });
  assert.deepEqual(tooMany, [
    { field: 'allowedKeys', message: `allowedKeys lists ${MAX_ENV_ITEMS + 1} names; at most ${MAX_ENV_ITEMS} are allowed` },
  ]);
});

test('waitForApplied must be a boolean; unknown fields (typos) are refused by name', () => {
  assert.deepEqual(only({ ...ok, waitForApplied: 'no' }), { field: 'waitForApplied', message: 'waitForApplied must be true or false' });
  const typo = only({ ...ok, composeHashPolicty: 'off' });
  assert.equal(typo.field, 'composeHashPolicty');
  assert.match(typo.message, /^composeHashPolicty is not an input field \(known: cvmId, env, /);
  assert.equal(only({ ...ok, ['bad key!']: 1 }).field, '(a field whose name is not shown)');
});

test('not an object at all', () => {
  for (const input of [null, undefined, 'cvm', 3, []]) {
    assert.deepEqual(only(input), { field: '', message: 'the input must be an object {cvmId, env, ...}' });
  }
});

test('every problem at once, in one line naming each field', () => {
  const p = problems({ cvmId: '..', env: { A: '1' }, composeHashPolicy: 'STRICT', confirmations: 0, requestId: 'a b' });
  assert.deepEqual(
    p.map((x) => x.field),
    ['cvmId', 'requestId', 'confirmations', 'composeHashPolicy'],
  );
  const line = describeInputProblems(p);
  assert.match(
    line,
    /^invalid input \(4 problems\): cvmId must be .*; requestId may hold .*; confirmations must be .*; composeHashPolicy must be/,
  );
  assert.ok(!line.includes('\n'));
});

test('utf8Bytes counts as UTF-8 does, without Buffer', () => {
  for (const s of ['', 'abc', 'é', '€', '😀', 'a\u{10FFFF}b', '\ud800', '\udc00x', 'x\ud83d', 'mixed ✓ 😀 é'.repeat(50)]) {
    assert.equal(utf8Bytes(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
  }
});
