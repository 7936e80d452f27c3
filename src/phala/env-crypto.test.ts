import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { encryptEnvVars as sdkEncryptEnvVars } from '@phala/cloud';
import {
  EnvCryptoError,
  MIN_ENCRYPTED_ENV_BYTES,
  decryptEnvVars,
  encryptEnvVars,
  encryptEnvVarsWith,
  generateEnvKeyPair,
} from './env-crypto.ts';

interface Vector {
  name: string;
  envs: { key: string; value: string }[];
  recipientPrivateKey: string;
  publicKey: string;
  ephemeralPrivateKey: string;
  iv: string;
  encrypted: string;
}
const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/env-crypto.json', import.meta.url), 'utf8')) as Vector[];

const SECRET = 'sup3r-s3cret-value-\u00e9-must-not-leak';
const ENVS = [
  { key: 'API_KEY', value: SECRET },
  { key: 'EMPTY', value: '' },
  { key: 'MULTI', value: 'line1\nline2\r\n"quoted"\\' },
  { key: 'UNICODE', value: '日本語 🚀' },
];

/** Asserts an EnvCryptoError with the given code whose text shows no secret. */
async function rejectsWith(fn: () => unknown, code: string, secrets: string[] = [SECRET]): Promise<EnvCryptoError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof EnvCryptoError, `expected EnvCryptoError(${code}), got ${String(caught)}`);
  assert.equal(caught.code, code);
  const shown = `${caught.message}\n${String(caught)}\n${caught.stack ?? ''}\n${JSON.stringify(caught)}\n${String(caught.cause ?? '')}`;
  for (const s of secrets) assert.ok(!shown.includes(s), `error text leaks a secret: ${caught.message}`);
  return caught;
}

// A second implementation from node:crypto, independent of noble, to check the wire format.
function nodeDecrypt(hex: string, privateKeyHex: string): unknown {
  const bytes = Buffer.from(hex, 'hex');
  const toJwk = (b: Buffer) => b.toString('base64url');
  const priv = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: toJwk(Buffer.from(privateKeyHex, 'hex')), x: toJwk(bytes.subarray(0, 32)) },
    format: 'jwk',
  });
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: toJwk(bytes.subarray(0, 32)) }, format: 'jwk' });
  const shared = diffieHellman({ privateKey: priv, publicKey: pub });
  const decipher = createDecipheriv('aes-256-gcm', shared, bytes.subarray(32, 44));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  const pt = Buffer.concat([decipher.update(bytes.subarray(44, bytes.length - 16)), decipher.final()]);
  return JSON.parse(pt.toString('utf8'));
}

// Seals arbitrary bytes in the wire format, so payloads our encryptor refuses to build can be tested.
function nodeEncrypt(plaintext: Buffer, recipientPublicHex: string): string {
  const eph = generateEnvKeyPair();
  const toJwk = (b: Buffer) => b.toString('base64url');
  const priv = createPrivateKey({
    key: {
      kty: 'OKP',
      crv: 'X25519',
      d: toJwk(Buffer.from(eph.privateKey, 'hex')),
      x: toJwk(Buffer.from(eph.publicKey, 'hex')),
    },
    format: 'jwk',
  });
  const pub = createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: toJwk(Buffer.from(recipientPublicHex, 'hex')) },
    format: 'jwk',
  });
  const shared = diffieHellman({ privateKey: priv, publicKey: pub });
  const iv = Buffer.alloc(12, 7);
  const cipher = createCipheriv('aes-256-gcm', shared, iv);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([Buffer.from(eph.publicKey, 'hex'), iv, sealed]).toString('hex');
}

test('round trip, with and without 0x on keys', async () => {
  const { privateKey, publicKey } = generateEnvKeyPair();
  assert.match(privateKey, /^[0-9a-f]{64}$/);
  assert.match(publicKey, /^[0-9a-f]{64}$/);
  const hex = await encryptEnvVars(ENVS, publicKey);
  assert.match(hex, /^[0-9a-f]+$/);
  assert.equal(hex.length / 2, MIN_ENCRYPTED_ENV_BYTES + Buffer.byteLength(JSON.stringify({ env: ENVS })));
  assert.deepEqual(await decryptEnvVars(hex, privateKey), ENVS);
  const hex2 = await encryptEnvVars(ENVS, `0x${publicKey}`);
  assert.deepEqual(await decryptEnvVars(hex2, `0x${privateKey}`), ENVS);
  assert.notEqual(hex, hex2, 'fresh ephemeral key and IV each time');
  assert.deepEqual(await decryptEnvVars(await encryptEnvVars([], publicKey), privateKey), []);
});

test('stray properties on input items are not encrypted', async () => {
  const { privateKey, publicKey } = generateEnvKeyPair();
  const hex = await encryptEnvVars([{ key: 'A', value: '1', note: 'x' } as { key: string; value: string }], publicKey);
  assert.deepEqual(nodeDecrypt(hex, privateKey), { env: [{ key: 'A', value: '1' }] });
});

test('interop: official SDK encrypts, we decrypt', async () => {
  for (let i = 0; i < 20; i++) {
    const { privateKey, publicKey } = generateEnvKeyPair();
    const envs = [...ENVS, { key: `K${i}`, value: 'v'.repeat(i * 37) }];
    const hex = await sdkEncryptEnvVars(envs, i % 2 ? `0x${publicKey}` : publicKey);
    assert.deepEqual(await decryptEnvVars(hex, privateKey), envs);
  }
});

test('interop: we encrypt, an independent node:crypto decryptor reads it', async () => {
  const { privateKey, publicKey } = generateEnvKeyPair();
  const hex = await encryptEnvVars(ENVS, publicKey);
  assert.deepEqual(nodeDecrypt(hex, privateKey), { env: ENVS });
  const theirs = await sdkEncryptEnvVars(ENVS, publicKey);
  assert.deepEqual(nodeDecrypt(theirs, privateKey), nodeDecrypt(hex, privateKey));
});

test('known-answer vectors', async () => {
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    const again = encryptEnvVarsWith(v.envs, v.publicKey, { ephemeralPrivateKey: v.ephemeralPrivateKey, iv: v.iv });
    assert.equal(again, v.encrypted, v.name);
    assert.equal(v.encrypted.slice(64, 88), v.iv, `${v.name}: iv position`);
    assert.deepEqual(await decryptEnvVars(v.encrypted, v.recipientPrivateKey), v.envs, v.name);
    assert.deepEqual(nodeDecrypt(v.encrypted, v.recipientPrivateKey), { env: v.envs }, v.name);
  }
});

test('malformed keys', async () => {
  const { publicKey, privateKey } = generateEnvKeyPair();
  for (const bad of ['', 'abcd', `${publicKey}00`, publicKey.slice(2), `zz${publicKey.slice(2)}`, `0x${publicKey.slice(1)}`]) {
    await rejectsWith(() => encryptEnvVars(ENVS, bad), 'invalid_public_key');
    await rejectsWith(() => decryptEnvVars('00'.repeat(80), bad), 'invalid_private_key');
  }
  await rejectsWith(() => encryptEnvVarsWith(ENVS, publicKey, { ephemeralPrivateKey: privateKey, iv: '00'.repeat(11) }), 'invalid_iv');
  await rejectsWith(() => encryptEnvVarsWith(ENVS, publicKey, { ephemeralPrivateKey: 'ab', iv: '00'.repeat(12) }), 'invalid_private_key');
});

test('low-order public keys (all-zero shared secret) are refused both ways', async () => {
  const { privateKey } = generateEnvKeyPair();
  const lowOrder = [
    '00'.repeat(32),
    `01${'00'.repeat(31)}`,
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];
  for (const key of lowOrder) {
    await rejectsWith(() => encryptEnvVars(ENVS, key), 'weak_shared_secret');
    const forged = `${key}${'00'.repeat(12)}${'00'.repeat(40)}`;
    await rejectsWith(() => decryptEnvVars(forged, privateKey), 'weak_shared_secret');
  }
});

test('too-short and non-hex ciphertexts', async () => {
  const { privateKey } = generateEnvKeyPair();
  await rejectsWith(() => decryptEnvVars('', privateKey), 'ciphertext_too_short');
  await rejectsWith(() => decryptEnvVars('00'.repeat(MIN_ENCRYPTED_ENV_BYTES - 1), privateKey), 'ciphertext_too_short');
  await rejectsWith(() => decryptEnvVars('0g'.repeat(80), privateKey), 'invalid_ciphertext');
  await rejectsWith(() => decryptEnvVars('0'.repeat(161), privateKey), 'invalid_ciphertext');
});

test('tampering anywhere fails authentication without leaking plaintext', async () => {
  const { privateKey, publicKey } = generateEnvKeyPair();
  const hex = await encryptEnvVars(ENVS, publicKey);
  const bytes = Buffer.from(hex, 'hex');
  // iv, first ciphertext byte, last ciphertext byte, tag; the ephemeral key is covered separately.
  for (const at of [32, 43, 44, bytes.length - 17, bytes.length - 16, bytes.length - 1]) {
    const copy = Buffer.from(bytes);
    copy[at] = (copy[at] as number) ^ 0x01;
    await rejectsWith(() => decryptEnvVars(copy.toString('hex'), privateKey), 'authentication_failed');
  }
  const otherEphemeral = Buffer.from(bytes);
  otherEphemeral.set(Buffer.from(generateEnvKeyPair().publicKey, 'hex'), 0);
  await rejectsWith(() => decryptEnvVars(otherEphemeral.toString('hex'), privateKey), 'authentication_failed');
  await rejectsWith(() => decryptEnvVars(hex.slice(0, -2), privateKey), 'authentication_failed');
  await rejectsWith(() => decryptEnvVars(hex, generateEnvKeyPair().privateKey), 'authentication_failed');
});

test('decrypted payloads of the wrong shape are refused without echoing them', async () => {
  const { privateKey, publicKey } = generateEnvKeyPair();
  const cases: [string, string][] = [
    [`not json ${SECRET}`, 'not JSON'],
    [`"${SECRET}"`, 'not a JSON object'],
    [`[{"key":"A","value":"${SECRET}"}]`, 'not a JSON object'],
    [`{"envs":[{"key":"A","value":"${SECRET}"}]}`, 'no "env" array'],
    [`{"env":{"key":"A","value":"${SECRET}"}}`, 'no "env" array'],
    [`{"env":[{"key":"A","value":"ok"},{"key":"B","value":12345,"x":"${SECRET}"}]}`, 'env[1]'],
    [`{"env":[{"key":"A"}],"pad":"${SECRET}"}`, 'env[0]'],
    [`{"env":[null],"pad":"${SECRET}"}`, 'env[0]'],
  ];
  for (const [plaintext, expected] of cases) {
    const sealed = nodeEncrypt(Buffer.from(plaintext, 'utf8'), publicKey);
    const err = await rejectsWith(() => decryptEnvVars(sealed, privateKey), 'invalid_payload', [SECRET, '12345']);
    assert.ok(err.message.includes(expected), err.message);
  }
  const notUtf8 = nodeEncrypt(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), publicKey);
  const err = await rejectsWith(() => decryptEnvVars(notUtf8, privateKey), 'invalid_payload');
  assert.ok(err.message.includes('UTF-8'), err.message);
});

test('invalid env input is refused before encryption, naming the index only', async () => {
  const { publicKey } = generateEnvKeyPair();
  const bad = [
    { key: 'A', value: SECRET },
    { key: 'B', value: 42 },
  ] as unknown as { key: string; value: string }[];
  const err = await rejectsWith(() => encryptEnvVars(bad, publicKey), 'invalid_env');
  assert.match(err.message, /envs\[1\]\.value/);
  await rejectsWith(() => encryptEnvVars('nope' as never, publicKey), 'invalid_env');
});
