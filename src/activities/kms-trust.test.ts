import { test } from 'node:test';
import assert from 'node:assert/strict';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { FAILURE } from '../failure-types.ts';
import { kmsPublicKeyFromPrivate } from '../phala/kms-signature.ts';
import { pinFor, trustedKmsKey, type KmsKeyPins, type KmsKeyQuestion, type KmsTrustSettings } from './kms-trust.ts';

const KEY = kmsPublicKeyFromPrivate('11'.repeat(32));
const OTHER = kmsPublicKeyFromPrivate('22'.repeat(32));
const CONTRACT = '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0';
// A long, realistic KMS slug: the reasons must still fit in the operator's 300-character status.
const base: Omit<KmsKeyQuestion, 'onChain' | 'apiKey'> = { kmsId: 'kms-base-prod-0123456789abcdef', chainId: 8453, contract: CONTRACT };
const NO_RPC = { missing: 'the worker has no RPC for chain 8453' };
const NO_KEY = { missing: 'the KMS contract publishes no k256 key' };

function pins(byChain: [number, string][] = [], byContract: [string, string][] = []): KmsKeyPins {
  return { byChain: new Map(byChain), byContract: new Map(byContract) };
}

function refusal(q: KmsKeyQuestion, settings: Partial<KmsTrustSettings>): string {
  try {
    trustedKmsKey(q, settings);
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, FAILURE.KeyNotTrusted);
    assert.equal(err.nonRetryable, true);
    assert.ok(err.message.length <= 300, `${err.message.length} characters: ${err.message}`);
    assert.match(err.message, /the env key is not trusted, nothing was sent$/);
    return err.message;
  }
  assert.fail('the key was trusted');
}

test('contract readable: the contract key is used when the API (and any pin) agree', () => {
  const q = { ...base, apiKey: KEY, onChain: { key: KEY } };
  assert.equal(trustedKmsKey(q, {}), KEY);
  assert.equal(trustedKmsKey(q, { kmsKeyPins: pins([[8453, KEY]]) }), KEY);
  // An uncompressed API key naming the same point agrees.
  const uncompressed = `0x${Buffer.from(secp256k1.getPublicKey(Buffer.from('11'.repeat(32), 'hex'), false)).toString('hex')}`;
  assert.equal(trustedKmsKey({ ...q, apiKey: uncompressed }, { kmsKeyPins: pins([], [[CONTRACT, KEY]]) }), KEY);
});

test('contract readable: an API key that differs is refused, whatever the pin or opt-in says', () => {
  const msg = refusal({ ...base, apiKey: OTHER, onChain: { key: KEY } }, { kmsKeyPins: pins([[8453, OTHER]]), trustApiKmsKey: true });
  // The pin disagreeing with the contract is reported first: it is the worker's own setting.
  assert.match(msg, /^the KMS_PUBLIC_KEYS pin 8453=… disagrees with the key of the KMS contract on chain 8453 \(0x/);
  const msg2 = refusal({ ...base, apiKey: OTHER, onChain: { key: KEY } }, { trustApiKmsKey: true });
  assert.match(
    msg2,
    /^the API's key for KMS kms-base-prod-0123456789abcdef \(0x.*\) does not match the key in the KMS contract on chain 8453/,
  );
});

test('contract readable: a pin that disagrees with it is refused even when the API agrees with the contract', () => {
  const msg = refusal({ ...base, apiKey: KEY, onChain: { key: KEY } }, { kmsKeyPins: pins([], [[CONTRACT, OTHER]]) });
  assert.match(msg, new RegExp(`^the KMS_PUBLIC_KEYS pin ${CONTRACT}=… disagrees .*: correct or remove the pin`));
});

test('contract not readable: the pin decides', () => {
  assert.equal(trustedKmsKey({ ...base, apiKey: KEY, onChain: NO_RPC }, { kmsKeyPins: pins([[8453, KEY]]) }), KEY);
  assert.equal(trustedKmsKey({ ...base, apiKey: KEY, onChain: NO_KEY }, { kmsKeyPins: pins([], [[CONTRACT, KEY]]) }), KEY);
  const msg = refusal({ ...base, apiKey: OTHER, onChain: NO_KEY }, { kmsKeyPins: pins([[8453, KEY]]), trustApiKmsKey: true });
  assert.match(msg, /differs from the KMS_PUBLIC_KEYS pin 8453=… \(the KMS contract publishes no k256 key\)/);
});

test('contract not readable and no pin: refused naming what to configure', () => {
  const msg = refusal({ ...base, apiKey: KEY, onChain: NO_RPC }, { kmsKeyPins: pins([[1, KEY]]) });
  assert.match(
    msg,
    new RegExp(
      `^KMS kms-base-prod-0123456789abcdef's key cannot be checked \\(the worker has no RPC for chain 8453\\): ` +
        `set CHAIN_RPC_URLS for chain 8453, or KMS_PUBLIC_KEYS=8453=0x… \\(or ${CONTRACT}=0x…\\), or KMS_TRUST_API_KEY=true`,
    ),
  );
  // Without a chain or contract known, the placeholders say what to fill in.
  const unknown = refusal(
    { kmsId: 'k', chainId: undefined, contract: undefined, apiKey: KEY, onChain: { missing: "the KMS's chain is not known" } },
    {},
  );
  assert.match(unknown, /KMS_PUBLIC_KEYS=<chainId>=0x… \(or <KMS contract>=0x…\)/);
});

test('contract not readable, no pin, KMS_TRUST_API_KEY: the API key is used, with a warning', async () => {
  const entries: LogEntry[] = [];
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN', (e) => entries.push(e)) });
  const key = await env.run(() => Promise.resolve(trustedKmsKey({ ...base, apiKey: OTHER, onChain: NO_RPC }, { trustApiKmsKey: true })));
  assert.equal(key, OTHER);
  assert.equal(entries.length, 1);
  assert.match(entries[0]!.message, /KMS_TRUST_API_KEY=true: the API-served key is trusted as served/);
  assert.equal(entries[0]!.meta?.reason, NO_RPC.missing);
});

test('a pin for the contract wins over one for its chain', () => {
  const p = pins([[8453, OTHER]], [[CONTRACT, KEY]]);
  assert.equal(pinFor(p, 8453, CONTRACT.toUpperCase().replace('0X', '0x'))?.key, KEY);
  assert.equal(pinFor(p, 8453, '0x0000000000000000000000000000000000000001')?.key, OTHER);
  assert.equal(pinFor(p, 1, undefined), undefined);
  assert.equal(pinFor(undefined, 8453, CONTRACT), undefined);
});
