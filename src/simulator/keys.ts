/**
 * Key material of the simulated KMSes.
 *
 * A real dstack KMS derives an app's env-encryption key from its root secret and the app id, so
 * every CVM of one app shares that key and the public key endpoint can answer for any app id.
 * The simulator does the same (HMAC instead of the KMS's KDF: only determinism matters here).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { kmsPublicKeyFromPrivate } from '../phala/kms-signature.ts';

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** A fresh secp256k1 private key for a KMS (lowercase hex, no 0x). */
export function newK256PrivateKey(): string {
  return bytesToHex(secp256k1.utils.randomSecretKey());
}

/** Compressed secp256k1 public key, 0x-prefixed hex: the KMS's `k256_pubkey`. */
export function k256PublicKey(privateKeyHex: string): string {
  let pub = k256PublicKeys.get(privateKeyHex);
  if (pub === undefined) k256PublicKeys.set(privateKeyHex, (pub = kmsPublicKeyFromPrivate(privateKeyHex)));
  return pub;
}

// Every CVM and KMS view shows it: derived once per KMS key, not at each answer (a 200-CVM
// fleet spent 2% of the simulator's CPU deriving the same few keys).
const k256PublicKeys = new Map<string, string>();

/** The app's x25519 env key pair as the KMS derives it (hex, no 0x). */
export function deriveAppEnvKeyPair(envKeyRootHex: string, appIdHex: string): { privateKey: string; publicKey: string } {
  const secret = createHmac('sha256', Buffer.from(envKeyRootHex, 'hex'))
    .update('dstack-sim-env-encrypt-key:')
    .update(Buffer.from(appIdHex, 'hex'))
    .digest();
  const pub = x25519.getPublicKey(secret);
  const pair = { privateKey: secret.toString('hex'), publicKey: bytesToHex(pub) };
  secret.fill(0);
  return pair;
}
