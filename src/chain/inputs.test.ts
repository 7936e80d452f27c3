import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainError } from './errors.ts';
import { normalizeComposeHash, parseAddress, parseTxHash, parseWei, parseNonce, toSafeNumber } from './inputs.ts';

const invalid = (re: RegExp) => (err: unknown) => err instanceof ChainError && err.code === 'INVALID_INPUT' && re.test(err.message);

test('compose hashes arrive bare or 0x-prefixed, any case, and leave as lowercase 0x bytes32', () => {
  const bare = 'AB'.repeat(32);
  assert.equal(normalizeComposeHash(bare), `0x${'ab'.repeat(32)}`);
  assert.equal(normalizeComposeHash(` 0x${bare} `), `0x${'ab'.repeat(32)}`);
  assert.throws(() => normalizeComposeHash('ab'.repeat(31)), invalid(/composeHash must be 32 bytes/));
  assert.throws(() => normalizeComposeHash('zz'.repeat(32), 'compose_hash'), invalid(/^compose_hash/));
});

test('rejections describe the shape of a value, never its content', () => {
  const key = 'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
  for (const fn of [
    () => parseTxHash(key + 'ff'),
    () => parseAddress(key),
    () => parseWei(key, 'fee'),
    () => normalizeComposeHash(key + '0'),
  ]) {
    assert.throws(fn, (err: unknown) => err instanceof ChainError && !err.message.includes(key) && /characters/.test(err.message));
  }
});

test('addresses are checksummed, tx hashes lowercased, wei parsed from decimal strings', () => {
  assert.equal(parseAddress('0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266'), '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
  assert.equal(parseTxHash(`0x${'AB'.repeat(32)}`), `0x${'ab'.repeat(32)}`);
  assert.equal(parseWei('1000000000000000000000', 'x'), 10n ** 21n);
  assert.equal(parseWei(5, 'x'), 5n);
  assert.throws(() => parseWei('1e9', 'maxFeePerGas'), invalid(/maxFeePerGas must be a decimal string/));
  assert.throws(() => parseWei(-1n, 'x'), invalid(/negative/));
  assert.throws(() => parseWei(1.5, 'x'), invalid(/integer/));
  assert.equal(parseNonce(0), 0);
  assert.throws(() => parseNonce(-1), invalid(/nonce/));
  assert.equal(toSafeNumber(12n, 'block'), 12);
  assert.throws(() => toSafeNumber(2n ** 60n, 'block'));
});
