import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAbortArg, parseRetryArg, parseTransactionArg, shapeOf } from './operator-input.ts';

const HASH = `0x${'Ab'.repeat(32)}`;

test('useTransaction takes {transactionHash} or the hash alone, lower-cased', () => {
  assert.deepEqual(parseTransactionArg({ transactionHash: HASH }), { ok: true, value: HASH.toLowerCase() });
  assert.deepEqual(parseTransactionArg(HASH), { ok: true, value: HASH.toLowerCase() });
});

test('useTransaction names what is wrong with anything else, without repeating it', () => {
  const cases: [unknown, RegExp][] = [
    [undefined, /^malformed hash: expected \{"transactionHash": "<0x followed by 64 hex digits>"\}, got nothing$/],
    [null, /got null$/],
    [42, /got a number$/],
    [[HASH], /got a list of 1$/],
    [{}, /got an empty object$/],
    [{ hash: HASH }, /got an object with "hash"$/],
    [{ transactionHash: 5 }, /transactionHash was a number$/],
    [{ transactionHash: HASH.slice(0, 65) }, /transactionHash was a string of 65 characters$/],
    [`${HASH}ff`, /got a string of 68 characters$/],
    [{ transactionHash: HASH, extra: 1 }, /^malformed argument: unknown field "extra"/],
  ];
  for (const [arg, expected] of cases) {
    const r = parseTransactionArg(arg);
    assert.ok(!r.ok, JSON.stringify(arg));
    assert.match(r.problem, expected, JSON.stringify(arg));
    // A secret pasted into the wrong field is never repeated.
    if (typeof arg === 'string') assert.ok(!r.problem.includes(arg));
  }
});

test('abort takes nothing, a reason, or the reason alone; refuses the rest', () => {
  for (const none of [undefined, null, {}, { reason: null }, { reason: '  ' }])
    assert.deepEqual(parseAbortArg(none), { ok: true, value: {} });
  assert.deepEqual(parseAbortArg({ reason: ' too slow ' }), { ok: true, value: { reason: 'too slow' } });
  assert.deepEqual(parseAbortArg('too slow'), { ok: true, value: { reason: 'too slow' } });
  const bad: [unknown, RegExp][] = [
    [42, /got a number$/],
    [{ reason: 5 }, /got reason as a number$/],
    [{ reson: 'typo' }, /unknown field "reson"/],
    [['x'], /got a list of 1$/],
    [{ reason: 'x'.repeat(501) }, /501 characters, at most 500/],
  ];
  for (const [arg, expected] of bad) {
    const r = parseAbortArg(arg);
    assert.ok(!r.ok, JSON.stringify(arg));
    assert.match(r.problem, expected);
  }
});

test('retry takes nothing (or an empty object)', () => {
  for (const none of [undefined, null, {}]) assert.equal(parseRetryArg(none).ok, true);
  for (const bad of [1, 'now', { now: true }, []]) {
    const r = parseRetryArg(bad);
    assert.ok(!r.ok);
    assert.match(r.problem, /^malformed argument: retry takes no argument, got /);
  }
});

test('shapes are short even for huge inputs', () => {
  assert.equal(shapeOf('x'.repeat(10_000)), 'a string of 10000 characters');
  assert.ok(shapeOf({ ['k'.repeat(1000)]: 1 }).length < 80);
});
