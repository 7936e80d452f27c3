/**
 * Writes the known-answer vectors under test/vectors/. Run once and commit the output:
 *   npx tsx scripts/gen-vectors.ts
 * The tests recompute every vector and compare, so a change to the wire formats shows up as a
 * diff in these files rather than slipping through. All key material is derived from fixed
 * labels; none of it is, or may become, a real key.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { encryptEnvVarsWith } from '../src/phala/env-crypto.ts';
import { canonicalComposeJson, getComposeHash } from '../src/phala/compose-hash.ts';
import { kmsPublicKeyFromPrivate, signEnvEncryptPublicKey } from '../src/phala/kms-signature.ts';

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors');

const fixed = (label: string, bytes = 32): string =>
  bytesToHex(sha256(utf8ToBytes(`durable-cvm-envs/test-vector/${label}`))).slice(0, bytes * 2);

function envCryptoVectors() {
  const cases: { name: string; envs: { key: string; value: string }[] }[] = [
    { name: 'empty list', envs: [] },
    { name: 'single', envs: [{ key: 'API_KEY', value: 'test-value-1' }] },
    {
      name: 'several, unicode, empty value, newlines',
      envs: [
        { key: 'DATABASE_URL', value: 'postgres://user:pw@db:5432/app?sslmode=require' },
        { key: 'GREETING', value: 'héllo wörld ✓ 🚀' },
        { key: 'EMPTY', value: '' },
        { key: 'PEM', value: '-----BEGIN TEST-----\nAAAA\nBBBB\n-----END TEST-----' },
        { key: 'QUOTES', value: 'say "hi" \\ \'there\'' },
      ],
    },
  ];
  return cases.map(({ name, envs }, i) => {
    const recipientPrivateKey = fixed(`env-crypto/${i}/recipient`);
    const publicKey = bytesToHex(x25519.getPublicKey(Buffer.from(recipientPrivateKey, 'hex')));
    const ephemeralPrivateKey = fixed(`env-crypto/${i}/ephemeral`);
    const iv = fixed(`env-crypto/${i}/iv`, 12);
    return {
      name,
      envs,
      recipientPrivateKey,
      publicKey,
      ephemeralPrivateKey,
      iv,
      encrypted: encryptEnvVarsWith(envs, publicKey, { ephemeralPrivateKey, iv }),
    };
  });
}

function composeHashVectors() {
  const composes: { name: string; compose: Record<string, unknown> }[] = [
    {
      name: 'typical docker-compose app',
      compose: {
        manifest_version: 2,
        name: 'my-app',
        runner: 'docker-compose',
        docker_compose_file: 'services:\n  web:\n    image: nginx:1.27\n    environment:\n      - API_KEY=${API_KEY}\n',
        kms_enabled: true,
        gateway_enabled: true,
        public_logs: false,
        public_sysinfo: true,
        local_key_provider_enabled: false,
        key_provider_id: '',
        allowed_envs: ['API_KEY', 'DATABASE_URL'],
        no_instance_id: false,
        secure_time: false,
        pre_launch_script: '#!/bin/bash\necho "pre-launch"\n',
      },
    },
    {
      name: 'nested, unsorted, arrays of objects',
      compose: {
        z: { b: [3, 2, 1], a: { y: null, x: [{ d: 1, c: 2 }] } },
        a: [],
        m: {},
        allowed_envs: [],
      },
    },
    {
      name: 'unicode and escapes',
      compose: { ключ: 'значение', emoji: '🚀✓', ctl: 'tab\tnl\nquote"back\\slash\u0001', é: 'e-acute', e: 'plain' },
    },
    {
      name: 'numbers',
      compose: { int: 42, neg: -7, float: 3.14159, exp: 1e21, small: 1e-7, zero: 0, big: 9007199254740993 },
    },
    {
      name: 'index-like keys',
      compose: { b: 1, '10': 'ten', '9': 'nine', a: 2, '01': 'not an index' },
    },
  ];
  return composes.map(({ name, compose }) => ({
    name,
    compose,
    canonical: canonicalComposeJson(compose),
    hash: getComposeHash(compose),
  }));
}

function kmsSignatureVectors() {
  const kmsPrivateKey = fixed('kms/k256');
  const kmsPublicKey = kmsPublicKeyFromPrivate(kmsPrivateKey);
  const appId = `0x${fixed('kms/app-id', 20)}`;
  const publicKey = bytesToHex(x25519.getPublicKey(Buffer.from(fixed('kms/env-key'), 'hex')));
  const base = { kmsPrivateKey, kmsPublicKey, appId, publicKey };
  return [
    { name: 'legacy', ...base, signature: signEnvEncryptPublicKey(base) },
    { name: 'timestamped', ...base, timestamp: 1767225600, signature: signEnvEncryptPublicKey({ ...base, timestamp: 1767225600 }) },
    { name: 'timestamped, zero', ...base, timestamp: 0, signature: signEnvEncryptPublicKey({ ...base, timestamp: 0 }) },
  ];
}

function write(name: string, data: unknown): void {
  const path = join(outDir, name);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  console.log(`wrote ${path}`);
}

mkdirSync(outDir, { recursive: true });
write('env-crypto.json', envCryptoVectors());
write('compose-hash.json', composeHashVectors());
write('kms-signature.json', kmsSignatureVectors());
