import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { verifyEnvEncryptPublicKey as sdkVerify } from '@phala/cloud';
import {
  KmsSignatureError,
  checkEnvEncryptPublicKey,
  kmsPublicKeyFromPrivate,
  signEnvEncryptPublicKey,
  verifyEnvEncryptPublicKey,
} from './kms-signature.ts';

interface Vector {
  name: string;
  kmsPrivateKey: string;
  kmsPublicKey: string;
  appId: string;
  publicKey: string;
  timestamp?: number;
  signature: string;
}
const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/kms-signature.json', import.meta.url), 'utf8')) as Vector[];
const legacy = vectors.find((v) => v.timestamp === undefined) as Vector;
const stamped = vectors.find((v) => v.timestamp !== undefined && v.timestamp > 0) as Vector;

const hexToBytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/^0x/, ''), 'hex'));
const flipByte = (hex: string, at: number): string => {
  const b = hexToBytes(hex);
  b[at] = (b[at] as number) ^ 0x01;
  return (hex.startsWith('0x') ? '0x' : '') + Buffer.from(b).toString('hex');
};

test('committed vectors: signing is deterministic and verifies', () => {
  assert.ok(legacy && stamped);
  for (const v of vectors) {
    assert.equal(kmsPublicKeyFromPrivate(v.kmsPrivateKey), v.kmsPublicKey, v.name);
    const sig = signEnvEncryptPublicKey({ publicKey: v.publicKey, appId: v.appId, kmsPrivateKey: v.kmsPrivateKey, timestamp: v.timestamp });
    assert.equal(sig, v.signature, v.name);
    assert.match(sig, /^0x[0-9a-f]{128}0[01]$/);
    assert.equal(verifyEnvEncryptPublicKey({ ...v, now: v.timestamp === undefined ? undefined : v.timestamp + 10 }), true, v.name);
  }
});

test('the example from @phala/dstack-sdk docs (a real KMS signature) verifies', () => {
  const args = {
    publicKey: 'e33a1832c6562067ff8f844a61e51ad051f1180b66ec2551fb0251735f3ee90a',
    signature:
      '8542c49081fbf4e03f62034f13fbf70630bdf256a53032e38465a27c36fd6bed7a5e7111652004aef37f7fd92fbfc1285212c4ae6a6154203a48f5e16cad2cef00',
    appId: '00'.repeat(20),
    kmsPublicKey: '0x0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f',
  };
  assert.equal(verifyEnvEncryptPublicKey(args), true);
  assert.equal(verifyEnvEncryptPublicKey({ ...args, appId: `0x${'00'.repeat(19)}01` }), false);
});

test('differential: the dstack SDK recovers the same signer from our legacy signatures', (t) => {
  // The SDK console.errors every failed recovery; tampered signatures would flood the output.
  t.mock.method(console, 'error', () => {});
  for (let i = 0; i < 25; i++) {
    const kmsPrivateKey = Buffer.from(secp256k1.utils.randomSecretKey()).toString('hex');
    const appId = `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(20))).toString('hex')}`;
    const publicKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex');
    const signature = signEnvEncryptPublicKey({ publicKey, appId, kmsPrivateKey });
    const kmsPublicKey = kmsPublicKeyFromPrivate(kmsPrivateKey);
    assert.equal(sdkVerify(hexToBytes(publicKey), hexToBytes(signature), appId), kmsPublicKey);
    assert.equal(verifyEnvEncryptPublicKey({ publicKey, signature, appId, kmsPublicKey }), true);
    // And the reverse: where the SDK recovers a different signer, we say no.
    const tampered = flipByte(signature, 5);
    const sdkSigner = sdkVerify(hexToBytes(publicKey), hexToBytes(tampered), appId);
    assert.notEqual(sdkSigner, kmsPublicKey);
    assert.equal(verifyEnvEncryptPublicKey({ publicKey, signature: tampered, appId, kmsPublicKey }), false);
  }
});

test('input spellings: 0x optional, upper-case hex, v as 27/28, uncompressed KMS key', () => {
  const v = legacy;
  const bare = (h: string) => h.replace(/^0x/, '');
  const sigBytes = hexToBytes(v.signature);
  sigBytes[64] = (sigBytes[64] as number) + 27;
  const uncompressed = Buffer.from(secp256k1.Point.fromHex(bare(v.kmsPublicKey)).toBytes(false)).toString('hex');
  const variants = [
    { ...v, signature: bare(v.signature), appId: bare(v.appId), kmsPublicKey: bare(v.kmsPublicKey) },
    { ...v, publicKey: `0x${v.publicKey.toUpperCase()}`, appId: v.appId.toUpperCase().replace('0X', '0x') },
    { ...v, signature: Buffer.from(sigBytes).toString('hex') },
    { ...v, kmsPublicKey: uncompressed },
  ];
  for (const args of variants) assert.equal(verifyEnvEncryptPublicKey(args), true);
});

test('wrong app id, wrong KMS key, tampered public key, variant mix-ups are rejected', () => {
  const now = (stamped.timestamp as number) + 1;
  const otherKms = kmsPublicKeyFromPrivate('22'.repeat(32));
  for (const v of [legacy, stamped]) {
    const base = { ...v, now };
    assert.equal(verifyEnvEncryptPublicKey(base), true);
    assert.deepEqual(checkEnvEncryptPublicKey({ ...base, appId: flipByte(v.appId, 19) }), { ok: false, reason: 'signer_mismatch' });
    assert.deepEqual(checkEnvEncryptPublicKey({ ...base, kmsPublicKey: otherKms }), { ok: false, reason: 'signer_mismatch' });
    assert.equal(verifyEnvEncryptPublicKey({ ...base, publicKey: flipByte(v.publicKey, 0) }), false);
    assert.equal(verifyEnvEncryptPublicKey({ ...base, signature: flipByte(v.signature, 40) }), false);
    // A flipped recovery bit recovers some other key.
    assert.equal(verifyEnvEncryptPublicKey({ ...base, signature: flipByte(v.signature, 64) }), false);
  }
  // The legacy signature is not valid as a timestamped one and vice versa.
  assert.equal(verifyEnvEncryptPublicKey({ ...legacy, timestamp: stamped.timestamp, now }), false);
  const { timestamp: _drop, ...stampedAsLegacy } = stamped;
  assert.equal(verifyEnvEncryptPublicKey(stampedAsLegacy), false);
  // A different timestamp (e.g. a replayed signature with a fresh-looking time) fails.
  assert.equal(verifyEnvEncryptPublicKey({ ...stamped, timestamp: (stamped.timestamp as number) + 1, now }), false);
});

test('freshness of timestamped signatures', () => {
  const t = stamped.timestamp as number;
  const check = (now: number, extra: object = {}) => checkEnvEncryptPublicKey({ ...stamped, now, ...extra });
  assert.deepEqual(check(t), { ok: true });
  assert.deepEqual(check(t + 300), { ok: true });
  assert.deepEqual(check(t + 301), { ok: false, reason: 'expired' });
  assert.deepEqual(check(t + 301, { maxAgeSeconds: 3600 }), { ok: true });
  assert.deepEqual(check(t + 61, { maxAgeSeconds: 60 }), { ok: false, reason: 'expired' });
  assert.deepEqual(check(t - 60), { ok: true });
  assert.deepEqual(check(t - 61), { ok: false, reason: 'from_future' });
  assert.deepEqual(check(t - 61, { futureSkewSeconds: 120 }), { ok: true });
  // Without `now` the real clock is used, so sign against it.
  const fresh = Math.floor(Date.now() / 1000);
  const sig = signEnvEncryptPublicKey({ ...stamped, timestamp: fresh });
  assert.equal(verifyEnvEncryptPublicKey({ ...stamped, timestamp: fresh, signature: sig }), true);
  const old = fresh - 301;
  const oldSig = signEnvEncryptPublicKey({ ...stamped, timestamp: old });
  assert.equal(verifyEnvEncryptPublicKey({ ...stamped, timestamp: old, signature: oldSig }), false);
  // BigInt timestamps sign the same bytes.
  assert.equal(signEnvEncryptPublicKey({ ...stamped, timestamp: BigInt(t) }), stamped.signature);
});

test('malformed inputs throw a clear KmsSignatureError', () => {
  const v = legacy;
  const cases: [object, RegExp][] = [
    [{ signature: v.signature.slice(0, -2) }, /signature must be 65 bytes, got 64/],
    [{ signature: `${v.signature}00` }, /signature must be 65 bytes/],
    [{ signature: 'zz' }, /signature is not an even-length hex/],
    [{ signature: `${v.signature.slice(0, -2)}05` }, /recovery byte must be 0, 1, 27 or 28, got 5/],
    [{ appId: '0x1234' }, /app id must be 20 bytes/],
    [{ appId: 'not-hex' }, /app id is not an even-length hex/],
    [{ publicKey: 'abcd' }, /env encryption public key must be 32 bytes/],
    [{ kmsPublicKey: `0x02${'00'.repeat(31)}` }, /KMS public key must be 33 or 65 bytes/],
    [{ kmsPublicKey: `0x05${'11'.repeat(32)}` }, /KMS public key is not a point/],
    [{ timestamp: -1 }, /timestamp must be a non-negative integer/],
    [{ timestamp: 1.5 }, /timestamp must be a non-negative integer/],
    [{ timestamp: 1, maxAgeSeconds: -5 }, /maxAgeSeconds/],
  ];
  for (const [patch, message] of cases) {
    assert.throws(
      () => verifyEnvEncryptPublicKey({ ...v, ...patch }),
      (err: unknown) => {
        assert.ok(err instanceof KmsSignatureError, String(err));
        assert.match(err.message, message);
        return true;
      },
    );
  }
  assert.throws(() => kmsPublicKeyFromPrivate('00'.repeat(32)), KmsSignatureError);
  assert.throws(() => kmsPublicKeyFromPrivate('abc'), KmsSignatureError);
  assert.throws(
    () => signEnvEncryptPublicKey({ ...v, kmsPrivateKey: 'ff'.repeat(32) }),
    (err: unknown) => err instanceof KmsSignatureError && !err.message.includes('ff'.repeat(32)),
  );
});

test('a well-formed but unrecoverable signature is a "no", not an exception', () => {
  const zeroR = `0x${'00'.repeat(32)}${'11'.repeat(32)}00`;
  assert.deepEqual(checkEnvEncryptPublicKey({ ...legacy, signature: zeroR }), { ok: false, reason: 'unrecoverable' });
  const hugeR = `0x${'ff'.repeat(32)}${'11'.repeat(32)}00`;
  assert.equal(verifyEnvEncryptPublicKey({ ...legacy, signature: hugeR }), false);
});
