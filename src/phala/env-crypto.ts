/**
 * Encrypted env payloads as the dstack guest decrypts them.
 *
 * Wire format (lowercase hex, no 0x): ephemeral_x25519_public(32) ‖ iv(12) ‖ AES-256-GCM(ct ‖ tag16)
 * over the UTF-8 of JSON.stringify({env:[{key,value},…]}). The raw x25519 shared secret is the
 * AES key, with no KDF: that is what the guest does, so it is not ours to improve.
 *
 * Errors never carry plaintext: messages are composed here from lengths and indices only, and
 * lower-level errors whose text could echo decrypted bytes (JSON.parse) are not attached as causes.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { gcm } from '@noble/ciphers/aes.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { randomBytes } from 'node:crypto';
import type { EnvVar } from './dotenv.ts';

export type { EnvVar };

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Smallest valid payload: ephemeral key, IV and tag around an empty ciphertext. */
export const MIN_ENCRYPTED_ENV_BYTES = KEY_BYTES + IV_BYTES + TAG_BYTES;

export type EnvCryptoErrorCode =
  | 'invalid_public_key'
  | 'invalid_private_key'
  | 'invalid_iv'
  | 'invalid_env'
  | 'weak_shared_secret'
  | 'invalid_ciphertext'
  | 'ciphertext_too_short'
  | 'authentication_failed'
  | 'invalid_payload';

export class EnvCryptoError extends Error {
  override readonly name = 'EnvCryptoError';
  readonly code: EnvCryptoErrorCode;

  constructor(code: EnvCryptoErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function describeHexProblem(text: string, bytes: number): string | null {
  if (!/^[0-9a-fA-F]*$/.test(text)) return 'is not hex';
  if (text.length !== bytes * 2) return `must be ${bytes} bytes (${bytes * 2} hex chars), got ${text.length} hex chars`;
  return null;
}

function keyBytes(input: string | Uint8Array, what: string, code: EnvCryptoErrorCode): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.length !== KEY_BYTES) {
      throw new EnvCryptoError(code, `${what} must be ${KEY_BYTES} bytes, got ${input.length}`);
    }
    return Uint8Array.from(input);
  }
  if (typeof input !== 'string') throw new EnvCryptoError(code, `${what} must be a hex string`);
  const hex = input.startsWith('0x') || input.startsWith('0X') ? input.slice(2) : input;
  const problem = describeHexProblem(hex, KEY_BYTES);
  if (problem) throw new EnvCryptoError(code, `${what} ${problem}`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array, whose: string): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    // Lengths are checked before this point, so noble only refuses low-order points here.
    throw new EnvCryptoError('weak_shared_secret', `${whose} is a low-order x25519 point: the shared secret would be all zero`);
  }
  // Kept even though noble rejects low-order points up front: an all-zero AES key would let
  // anyone read the env, so this must not depend on a library detail.
  if (shared.every((b) => b === 0)) {
    throw new EnvCryptoError('weak_shared_secret', `x25519 shared secret with the ${whose} is all zero`);
  }
  return shared;
}

function plaintextOf(envs: readonly EnvVar[]): Uint8Array {
  if (!Array.isArray(envs)) throw new EnvCryptoError('invalid_env', 'envs must be an array of {key, value}');
  // Rebuilt item by item so stray properties on the caller's objects never reach the CVM.
  const env = envs.map((item, index) => {
    if (item === null || typeof item !== 'object') {
      throw new EnvCryptoError('invalid_env', `envs[${index}] must be an object with string key and value`);
    }
    if (typeof item.key !== 'string') throw new EnvCryptoError('invalid_env', `envs[${index}].key must be a string`);
    if (typeof item.value !== 'string') {
      throw new EnvCryptoError('invalid_env', `envs[${index}].value must be a string`);
    }
    return { key: item.key, value: item.value };
  });
  return new TextEncoder().encode(JSON.stringify({ env }));
}

export interface DeterministicEncryptionInputs {
  /** 32-byte x25519 secret (hex with or without 0x, or bytes). Never reuse outside tests. */
  ephemeralPrivateKey: string | Uint8Array;
  /** 12-byte GCM nonce (hex with or without 0x, or bytes). */
  iv: string | Uint8Array;
}

/**
 * Deterministic core of {@link encryptEnvVars}, exposed for known-answer vectors.
 * @internal Production code must use encryptEnvVars: a repeated key/IV pair breaks GCM.
 */
export function encryptEnvVarsWith(envs: readonly EnvVar[], publicKeyHex: string, inputs: DeterministicEncryptionInputs): string {
  const remote = keyBytes(publicKeyHex, 'env encryption public key', 'invalid_public_key');
  const ephemeral = keyBytes(inputs.ephemeralPrivateKey, 'ephemeral private key', 'invalid_private_key');
  const iv = nonceBytes(inputs.iv);
  const plaintext = plaintextOf(envs);
  const shared = sharedSecret(ephemeral, remote, 'env encryption public key');
  try {
    const ephemeralPublic = x25519.getPublicKey(ephemeral);
    const sealed = gcm(shared, iv).encrypt(plaintext);
    const out = new Uint8Array(KEY_BYTES + IV_BYTES + sealed.length);
    out.set(ephemeralPublic, 0);
    out.set(iv, KEY_BYTES);
    out.set(sealed, KEY_BYTES + IV_BYTES);
    return bytesToHex(out);
  } finally {
    shared.fill(0);
    ephemeral.fill(0);
    plaintext.fill(0);
  }
}

function nonceBytes(input: string | Uint8Array): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.length !== IV_BYTES) throw new EnvCryptoError('invalid_iv', `iv must be ${IV_BYTES} bytes, got ${input.length}`);
    return Uint8Array.from(input);
  }
  if (typeof input !== 'string') throw new EnvCryptoError('invalid_iv', 'iv must be a hex string');
  const hex = input.startsWith('0x') || input.startsWith('0X') ? input.slice(2) : input;
  const problem = describeHexProblem(hex, IV_BYTES);
  if (problem) throw new EnvCryptoError('invalid_iv', `iv ${problem}`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/**
 * Encrypts env vars to a CVM's x25519 public key (hex, 0x optional) with a fresh ephemeral key
 * and IV. Returns lowercase hex without 0x, ready for `encrypted_env`.
 */
export async function encryptEnvVars(envs: readonly EnvVar[], publicKeyHex: string): Promise<string> {
  return encryptEnvVarsWith(envs, publicKeyHex, {
    ephemeralPrivateKey: Uint8Array.from(randomBytes(KEY_BYTES)),
    iv: Uint8Array.from(randomBytes(IV_BYTES)),
  });
}

function parsePayload(plaintext: Uint8Array): EnvVar[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw new EnvCryptoError('invalid_payload', 'decrypted payload is not valid UTF-8');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the input, i.e. the secrets: deliberately dropped.
    throw new EnvCryptoError('invalid_payload', 'decrypted payload is not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new EnvCryptoError('invalid_payload', 'decrypted payload is not a JSON object');
  }
  const env = (doc as { env?: unknown }).env;
  if (!Array.isArray(env)) throw new EnvCryptoError('invalid_payload', 'decrypted payload has no "env" array');
  return env.map((item: unknown, index) => {
    const rec = item as { key?: unknown; value?: unknown } | null;
    if (rec === null || typeof rec !== 'object' || typeof rec.key !== 'string' || typeof rec.value !== 'string') {
      throw new EnvCryptoError('invalid_payload', `decrypted env[${index}] is not {key: string, value: string}`);
    }
    return { key: rec.key, value: rec.value };
  });
}

/**
 * Decrypts an `encrypted_env` hex payload with the CVM's x25519 private key.
 * The counterpart of the guest's decryption; used by the simulator and by tests.
 */
export async function decryptEnvVars(encryptedHex: string, privateKeyHex: string): Promise<EnvVar[]> {
  const privateKey = keyBytes(privateKeyHex, 'env decryption private key', 'invalid_private_key');
  if (typeof encryptedHex !== 'string') throw new EnvCryptoError('invalid_ciphertext', 'encrypted env must be a hex string');
  const hex = encryptedHex.startsWith('0x') ? encryptedHex.slice(2) : encryptedHex;
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
    throw new EnvCryptoError('invalid_ciphertext', 'encrypted env is not an even-length hex string');
  }
  const bytes = Uint8Array.from(Buffer.from(hex, 'hex'));
  if (bytes.length < MIN_ENCRYPTED_ENV_BYTES) {
    throw new EnvCryptoError(
      'ciphertext_too_short',
      `encrypted env is ${bytes.length} bytes; at least ${MIN_ENCRYPTED_ENV_BYTES} (key, iv, tag) are required`,
    );
  }
  const ephemeralPublic = bytes.subarray(0, KEY_BYTES);
  const iv = bytes.subarray(KEY_BYTES, KEY_BYTES + IV_BYTES);
  const sealed = bytes.subarray(KEY_BYTES + IV_BYTES);
  const shared = sharedSecret(privateKey, ephemeralPublic, 'ephemeral public key in the payload');
  let plaintext: Uint8Array;
  try {
    plaintext = gcm(shared, iv).decrypt(sealed);
  } catch {
    throw new EnvCryptoError(
      'authentication_failed',
      'encrypted env failed authentication: tampered, truncated, or encrypted to another key',
    );
  } finally {
    shared.fill(0);
    privateKey.fill(0);
  }
  try {
    return parsePayload(plaintext);
  } finally {
    plaintext.fill(0);
  }
}

/** A fresh x25519 key pair for env encryption, as lowercase hex without 0x. */
export function generateEnvKeyPair(): { privateKey: string; publicKey: string } {
  const { secretKey, publicKey } = x25519.keygen();
  const pair = { privateKey: bytesToHex(secretKey), publicKey: bytesToHex(publicKey) };
  secretKey.fill(0);
  return pair;
}
