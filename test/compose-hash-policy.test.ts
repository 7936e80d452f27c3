// The compose-hash check against the simulator writing app-compose.json with every known writer:
// the activity the workflow calls verifies a correct change under each, and stops (strict) on
// a 465 whose compose changes something nobody asked for.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createPhalaActivities } from '../src/activities/phala-activities.ts';
import type { ComposeHashCheck } from '../src/activities/types.ts';
import { PhalaCloudClient } from '../src/phala/api-client.ts';
import { COMPOSE_SERIALISATION_NAMES } from '../src/phala/compose-serialisations.ts';
import { encryptEnvVars } from '../src/phala/env-crypto.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { startSimulator, type Simulator } from '../src/simulator/server.ts';
import type { SeedConfig } from '../src/simulator/seed.ts';

const APP = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
let dir: string;
let sim: Simulator;
let admin: SimAdminClient;
let phala: PhalaCloudClient;
const env = new MockActivityEnvironment();

// Fields that make the writers differ: non-ASCII text, a null, an empty pre-launch script and
// a bash script the compose runner ignores (both dropped by the SDKs' preprocessing).
const COMPOSE_EXTRA = {
  name: 'café-∑-app',
  pre_launch_script: '',
  bash_script: 'echo never run by docker-compose',
  key_provider_id: null,
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dce-compose-policy-'));
  const seed: SeedConfig = {
    chainId: 31337,
    apps: [{ name: 'app-policy', kms: 'onchain', appId: APP, owner: '0x0000000000000000000000000000000000000001', ownerIsSigner: false }],
    cvms: [],
  };
  writeFileSync(join(dir, 'seed.json'), JSON.stringify(seed));
  sim = await startSimulator({
    statePath: join(dir, 'state.json'),
    seedPath: join(dir, 'seed.json'),
    apiKey: 'policy-key',
    adminToken: 'policy-admin',
  });
  admin = new SimAdminClient(sim.apiUrl, 'policy-admin');
  phala = new PhalaCloudClient({ baseUrl: sim.apiUrl, apiKey: 'policy-key' });
});
after(async () => {
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Phase 1 of a change that adds a key; returns the hash the 465 asks for. */
async function requestedHash(cvmId: string, keys: string[]): Promise<string> {
  const kms = (await phala.listKms({ isOnchain: true })).items[0]!;
  const pub = await phala.getAppEnvEncryptPubkey(kms.slug ?? kms.id, APP);
  const encrypted = await encryptEnvVars(
    keys.map((key) => ({ key, value: 'v' })),
    pub.public_key,
  );
  const r = await phala.updateCvmEnvs({ id: cvmId, encrypted_env: encrypted, env_keys: keys });
  assert.equal(r.status, 'precondition_required');
  return (r as { compose_hash: string }).compose_hash;
}

async function check(policy: 'strict' | 'warn', mode: string, drift = false): Promise<ComposeHashCheck> {
  await admin.setConfig({ composeSerialization: mode, composeDrift: drift });
  const cvm = await admin.createCvm({ kms: 'onchain', appId: APP, allowedEnvs: ['APP_MODE'], composeExtra: COMPOSE_EXTRA });
  const keys = ['APP_MODE', 'NEW_KEY'];
  const expected = await requestedHash(cvm.id, keys);
  const activities = createPhalaActivities({ phala });
  return (await env.run(() => activities.checkComposeHash({ cvmId: cvm.id, envKeys: keys, expected, policy }))) as ComposeHashCheck;
}

const MODES = ['compact', 'indented', ...COMPOSE_SERIALISATION_NAMES.flatMap((n) => [n, `${n}+preprocessed`, `${n}+nulls-dropped`])];

test(`strict accepts a correct change under each of the ${MODES.length} writer settings`, async () => {
  for (const mode of MODES) {
    const r = await check('strict', mode);
    assert.equal(r.matches, true, `${mode}: ${r.detail}`);
    assert.match(r.detail, /^verified: /, mode);
  }
});

test('a 465 whose compose also flips another field is contradicted: strict stops, warn only reports', async () => {
  for (const mode of ['dstack-js', 'python-ascii+preprocessed']) {
    const r = await check('strict', mode, true);
    assert.equal(r.matches, false, mode);
    assert.match(r.detail, /^contradicted: /, mode);
    assert.match(r.computed!, /^[0-9a-f]{64}$/);
    assert.notEqual(r.computed, r.expected);
  }
  const warned = await check('warn', 'phala-cloud', true);
  assert.equal(warned.matches, false);
  assert.equal(warned.policy, 'warn');
});
