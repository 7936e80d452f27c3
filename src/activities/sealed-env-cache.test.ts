import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SealedEnvCache } from './sealed-env-cache.ts';
import { sealEnvelope } from './sealed-env-reader.ts';
import { sealedEnvRef } from '../workflows/sealed-env.ts';

const at = { runId: 'run-1', activityId: 'seal-env-1' };

function sealed(bytes: number) {
  const ciphertext = randomBytes(bytes);
  const envelope = sealEnvelope(ciphertext);
  return { envelope, ref: sealedEnvRef(envelope, at), hex: ciphertext.toString('hex') };
}

test('sealed-env cache: returns the ciphertext the reference names', () => {
  const cache = new SealedEnvCache(1024);
  const a = sealed(100);
  cache.remember(a.envelope);
  assert.equal(cache.recall(a.ref), a.hex);
  assert.equal(cache.bytes, 100);
});

test('sealed-env cache: a reference to another sealing, or of another length, misses', () => {
  const cache = new SealedEnvCache(1024);
  const a = sealed(100);
  const b = sealed(100);
  cache.remember(a.envelope);
  // A late attempt's sealing is remembered but the history recorded another: never confused.
  assert.equal(cache.recall(b.ref), undefined);
  assert.equal(cache.recall({ ...a.ref, bytes: 99 }), undefined);
});

test('sealed-env cache: keeps at most its bytes, dropping the least recently used first', () => {
  const cache = new SealedEnvCache(250);
  const [a, b, c] = [sealed(100), sealed(100), sealed(100)];
  cache.remember(a.envelope);
  cache.remember(b.envelope);
  // a is used again, so b is the oldest when c arrives.
  assert.equal(cache.recall(a.ref), a.hex);
  cache.remember(c.envelope);
  assert.equal(cache.recall(b.ref), undefined);
  assert.equal(cache.recall(a.ref), a.hex);
  assert.equal(cache.recall(c.ref), c.hex);
  assert.equal(cache.bytes, 200);
  assert.equal(cache.size, 2);
});

test('sealed-env cache: remembering the same sealing twice counts it once', () => {
  const cache = new SealedEnvCache(1024);
  const a = sealed(100);
  cache.remember(a.envelope);
  cache.remember(a.envelope);
  assert.equal(cache.bytes, 100);
  assert.equal(cache.size, 1);
});

test('sealed-env cache: with no room (0) or a sealing larger than the room, nothing is kept', () => {
  const none = new SealedEnvCache(0);
  const a = sealed(10);
  none.remember(a.envelope);
  assert.equal(none.recall(a.ref), undefined);
  const small = new SealedEnvCache(50);
  const big = sealed(51);
  small.remember(big.envelope);
  assert.equal(small.size, 0);
});
