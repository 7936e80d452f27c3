import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pkg from '../src/index.ts';

test('the package root exports the library and the backend helpers under their names', () => {
  for (const name of [
    'parseEnvVars',
    'encryptEnvVars',
    'decryptEnvVars',
    'validateEnvVars',
    'getComposeHash',
    'signEnvEncryptPublicKey',
    'verifyEnvEncryptPublicKey',
    'PhalaCloudClient',
    'PhalaApiError',
    'startEnvUpdate',
    'awaitEnvUpdate',
    'getEnvUpdateStatus',
    'createDataConverter',
    'startRollout',
    'awaitRollout',
    'getRolloutStatus',
    'pauseRollout',
    'resumeRollout',
    'abortRollout',
    'approveRollout',
  ]) {
    assert.equal(typeof (pkg as Record<string, unknown>)[name], 'function', `${name} is not exported`);
  }
});

test('a round trip through the root exports', async () => {
  const { privateKey, publicKey } = pkg.generateEnvKeyPair();
  const envs = pkg.parseEnvVars('A=1\nexport B="two words"\n');
  pkg.validateEnvVars(envs);
  assert.deepEqual(await pkg.decryptEnvVars(await pkg.encryptEnvVars(envs, publicKey), privateKey), envs);
});
