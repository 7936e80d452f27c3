/**
 * Signatures by which an on-chain KMS vouches for an app's env-encryption public key.
 *
 * message   = "dstack-env-encrypt-pubkey" ‖ ":" ‖ app_id(20) ‖ [timestamp u64 BE] ‖ public_key
 * signature = secp256k1 over keccak256(message), 65 bytes r ‖ s ‖ recovery
 * Without a timestamp this is the legacy `signature`; with one it is the KMS's `signature_v1`.
 * The signer is accepted when the recovered compressed key equals the KMS's `k256_pubkey`.
 *
 * A signature that does not verify yields false; inputs that are not even well-formed throw
 * {@link KmsSignatureError}, since those point at a bug or a broken API response, not a forgery.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const PREFIX = utf8ToBytes('dstack-env-encrypt-pubkey:');
export const DEFAULT_SIGNATURE_MAX_AGE_SECONDS = 300;
/** Tolerated clock lead of the KMS over us before a timestamp counts as "from the future". */
export const DEFAULT_SIGNATURE_FUTURE_SKEW_SECONDS = 60;

export class KmsSignatureError extends Error {
  override readonly name = 'KmsSignatureError';
}

function hexBytes(input: string, what: string, lengths: readonly number[]): Uint8Array {
  if (typeof input !== 'string') throw new KmsSignatureError(`${what} must be a hex string`);
  const hex = input.startsWith('0x') || input.startsWith('0X') ? input.slice(2) : input;
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
    throw new KmsSignatureError(`${what} is not an even-length hex string`);
  }
  if (!lengths.includes(hex.length / 2)) {
    throw new KmsSignatureError(`${what} must be ${lengths.join(' or ')} bytes, got ${hex.length / 2}`);
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function timestampBytes(timestamp: number | bigint): Uint8Array {
  const t = typeof timestamp === 'bigint' ? timestamp : Number.isSafeInteger(timestamp) ? BigInt(timestamp) : -1n;
  if (t < 0n || t >= 1n << 64n) {
    throw new KmsSignatureError('timestamp must be a non-negative integer number of seconds (u64)');
  }
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, t, false);
  return out;
}

/** keccak256 of the signed message; exported for tests and for diagnosing KMS mismatches. */
export function envEncryptPublicKeyMessageHash(args: {
  publicKey: string;
  appId: string;
  timestamp?: number | bigint | undefined;
}): Uint8Array {
  const appId = hexBytes(args.appId, 'app id', [20]);
  const publicKey = hexBytes(args.publicKey, 'env encryption public key', [32]);
  const ts = args.timestamp === undefined ? new Uint8Array(0) : timestampBytes(args.timestamp);
  return keccak_256(concatBytes(PREFIX, appId, ts, publicKey));
}

/** Compressed (33-byte) secp256k1 public key of a KMS private key, lowercase hex with 0x. */
export function kmsPublicKeyFromPrivate(privHex: string): string {
  const priv = hexBytes(privHex, 'KMS private key', [32]);
  try {
    return `0x${bytesToHex(secp256k1.getPublicKey(priv, true))}`;
  } catch {
    throw new KmsSignatureError('KMS private key is not a valid secp256k1 scalar');
  } finally {
    priv.fill(0);
  }
}

/**
 * Signs an env-encryption public key the way the KMS does (used by the simulator and tests).
 * Returns 0x-prefixed hex of r ‖ s ‖ recovery with recovery in {0, 1}, which is what the KMS
 * emits and what `@phala/dstack-sdk`'s verifyEnvEncryptPublicKey accepts.
 */
export function signEnvEncryptPublicKey(args: {
  publicKey: string;
  appId: string;
  kmsPrivateKey: string;
  timestamp?: number | bigint | undefined;
}): string {
  const digest = envEncryptPublicKeyMessageHash(args);
  const priv = hexBytes(args.kmsPrivateKey, 'KMS private key', [32]);
  let recovered: Uint8Array;
  try {
    // noble's 'recovered' layout is recovery ‖ r ‖ s; the KMS wire layout puts recovery last.
    recovered = secp256k1.sign(digest, priv, { prehash: false, format: 'recovered' });
  } catch {
    throw new KmsSignatureError('KMS private key is not a valid secp256k1 scalar');
  } finally {
    priv.fill(0);
  }
  return `0x${bytesToHex(concatBytes(recovered.subarray(1), recovered.subarray(0, 1)))}`;
}

export type EnvEncryptPublicKeyCheck =
  { ok: true } | { ok: false; reason: 'signer_mismatch' | 'unrecoverable' | 'expired' | 'from_future' };

export interface VerifyEnvEncryptPublicKeyArgs {
  publicKey: string;
  signature: string;
  appId: string;
  /** The KMS's `k256_pubkey`, compressed (33 bytes) or uncompressed (65 bytes), 0x optional. */
  kmsPublicKey: string;
  /** Present for `signature_v1`; the legacy signature has none and no freshness check. */
  timestamp?: number | bigint | undefined;
  maxAgeSeconds?: number | undefined;
  futureSkewSeconds?: number | undefined;
  /** Current unix time in seconds; injectable for tests and deterministic callers. */
  now?: number | undefined;
}

/** Like {@link verifyEnvEncryptPublicKey}, but says why a signature was refused. */
export function checkEnvEncryptPublicKey(args: VerifyEnvEncryptPublicKeyArgs): EnvEncryptPublicKeyCheck {
  const digest = envEncryptPublicKeyMessageHash(args);
  const sig = hexBytes(args.signature, 'signature', [65]);
  const expected = normaliseKmsPublicKey(args.kmsPublicKey);
  const v = sig[64] as number;
  let recovery: number;
  if (v === 0 || v === 1) recovery = v;
  else if (v === 27 || v === 28) recovery = v - 27;
  else throw new KmsSignatureError(`signature recovery byte must be 0, 1, 27 or 28, got ${v}`);

  if (args.timestamp !== undefined) {
    const maxAge = args.maxAgeSeconds ?? DEFAULT_SIGNATURE_MAX_AGE_SECONDS;
    const skew = args.futureSkewSeconds ?? DEFAULT_SIGNATURE_FUTURE_SKEW_SECONDS;
    const now = args.now ?? Math.floor(Date.now() / 1000);
    if (!Number.isFinite(maxAge) || maxAge < 0 || !Number.isFinite(skew) || skew < 0 || !Number.isFinite(now)) {
      throw new KmsSignatureError('maxAgeSeconds, futureSkewSeconds and now must be finite, non-negative numbers');
    }
    const ts = Number(args.timestamp);
    if (ts > now + skew) return { ok: false, reason: 'from_future' };
    if (now - ts > maxAge) return { ok: false, reason: 'expired' };
  }

  let signer: string;
  try {
    const point = secp256k1.Signature.fromBytes(sig.subarray(0, 64), 'compact').addRecoveryBit(recovery).recoverPublicKey(digest);
    signer = point.toHex(true);
  } catch {
    return { ok: false, reason: 'unrecoverable' };
  }
  return signer === expected ? { ok: true } : { ok: false, reason: 'signer_mismatch' };
}

/**
 * True when `signature` is the KMS's signature over (appId, [timestamp], publicKey) and, for a
 * timestamped signature, is at most `maxAgeSeconds` (default 300) old and not more than
 * `futureSkewSeconds` (default 60) ahead of `now`. Throws only for malformed inputs.
 */
export function verifyEnvEncryptPublicKey(args: VerifyEnvEncryptPublicKeyArgs): boolean {
  return checkEnvEncryptPublicKey(args).ok;
}

/** A KMS public key (compressed or not, 0x or not) as compressed lowercase hex without 0x; throws KmsSignatureError. */
export function normaliseKmsPublicKey(input: string): string {
  const bytes = hexBytes(input, 'KMS public key', [33, 65]);
  try {
    return secp256k1.Point.fromBytes(bytes).toHex(true);
  } catch {
    throw new KmsSignatureError('KMS public key is not a point on secp256k1');
  }
}

/** True when two encodings (compressed or not, 0x or not) name the same secp256k1 key; false for anything malformed. */
export function sameKmsPublicKey(a: string, b: string): boolean {
  try {
    return normaliseKmsPublicKey(a) === normaliseKmsPublicKey(b);
  } catch {
    return false;
  }
}
