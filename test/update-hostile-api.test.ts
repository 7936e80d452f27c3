// Hostile answers from the API, each injected by the simulator over HTTP into a real update:
// huge bodies, wrong types, a bad KMS signature, a 465 naming another app or chain, a
// Retry-After of garbage, and a missing or malformed operations endpoint after acceptance.
// Each ends with a clear error (or recovers), quickly, and never shows a secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { abortEnvUpdate, awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate, type EnvUpdateHandle } from '../src/client.ts';
import { generateEnvKeyPair } from '../src/phala/env-crypto.ts';
import { kmsPublicKeyFromPrivate, signEnvEncryptPublicKey } from '../src/phala/kms-signature.ts';
import { useUpdateHarness } from './support/update-harness.ts';
import { waitForStatus } from './support/wait.ts';

// Some faults here (the KMS list, the env-key route) are not tied to a CVM: a simulator of its own.
const setup = useUpdateHarness({ private: true });
const newKey = () => `K_${randomBytes(4).toString('hex').toUpperCase()}`;
const secret = () => `secret-${randomBytes(8).toString('hex')}`;

async function failureOf(handle: EnvUpdateHandle): Promise<{ message: string; seconds: number }> {
  const started = Date.now();
  try {
    await awaitEnvUpdate(handle);
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const messages: string[] = [];
    for (let c: unknown = err.cause; c instanceof Error; c = (c as { cause?: unknown }).cause) messages.push(c.message);
    return { message: messages.join(' / '), seconds: (Date.now() - started) / 1000 };
  }
  throw new Error('the workflow did not fail');
}

function assertClean(message: string, value: string): void {
  assert.ok(!message.includes(value), 'an env value leaked into the failure');
  const key = setup.stack.env.PHALA_API_KEY;
  assert.ok(key, 'the stack has an API key');
  assert.ok(!message.includes(key), 'the API key leaked into the failure');
}

test('a huge body (64 MiB) is refused by size, at once, and nothing is applied', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  await setup.h.sim.addFaults({ rules: [{ route: 'GET /cvms/{id}', cvmId: cvm.id, tamper: { hugeBodyBytes: 64 * 1024 * 1024 } }] });
  const value = secret();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: value } }, { taskQueue: setup.h.taskQueue });
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /body is larger than \d+ bytes/);
  assert.ok(seconds < 15, `took ${seconds} s`);
  assertClean(message, value);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, {});
});

test('a field of the wrong type is named in a final failure', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'] });
  await setup.h.sim.addFaults({
    rules: [{ route: 'GET /cvms/{id}', cvmId: cvm.id, tamper: { set: [{ path: 'kms_info.chain_id', value: 'eleven' }] } }],
  });
  const value = secret();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: value } }, { taskQueue: setup.h.taskQueue });
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /does not match the expected schema: kms_info\.chain_id/);
  assert.ok(seconds < 15, `took ${seconds} s`);
  assertClean(message, value);
});

test('a malformed KMS signature on the env key fails at once (not after minutes of retries)', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'] });
  await setup.h.sim.addFaults({
    rules: [
      {
        route: 'GET /kms/{kms_id}/pubkey/{app_id}',
        tamper: {
          set: [
            { path: 'signature_v1', value: '0x1234' },
            { path: 'signature', value: '0x1234' },
          ],
        },
        times: 1,
      },
    ],
  });
  const value = secret();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: value } }, { taskQueue: setup.h.taskQueue });
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /unusable signature for the env encryption key.*signature must be 65 bytes, got 2/);
  assert.ok(seconds < 10, `took ${seconds} s`);
  assertClean(message, value);
});

for (const wrong of ['app', 'chain'] as const) {
  test(`a 465 naming another ${wrong} than the CVM's is a final failure, and nothing is registered`, async () => {
    const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'] });
    const set =
      wrong === 'app'
        ? [{ path: 'details.[field=app_id].value', value: setup.h.appId(false) }]
        : [{ path: 'details.[field=kms_info].value.chain_id', value: 1 }];
    await setup.h.sim.addFaults({ rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: cvm.id, tamper: { set }, times: 1 }] });
    const value = secret();
    const { handle } = await startEnvUpdate(
      setup.h.client,
      { cvmId: cvm.id, env: { A: 'a', [newKey()]: value } },
      { taskQueue: setup.h.taskQueue },
    );
    const { message, seconds } = await failureOf(handle);
    assert.match(message, new RegExp(`refusing to register on another ${wrong}`));
    assert.ok(seconds < 15, `took ${seconds} s`);
    assertClean(message, value);
    const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
    assert.equal(status.phase, 'failed');
    assert.deepEqual(status.sentTransactions, []);
    assert.equal(status.attempts.chainPreflight, undefined, 'the chain was not even asked');
  });
}

test('Retry-After: 1e9 (garbage) on a 429 neither stalls nor fails the update', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  await setup.h.sim.addFaults({
    rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: cvm.id, rateLimit: { retryAfter: '1e9' }, times: 2 }],
  });
  const env = { A: secret() };
  const started = Date.now();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  await awaitEnvUpdate(handle);
  assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('after the API accepted the change, a 404 and a malformed page from the operations endpoint are retried, not fatal', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala', applyDelayMs: 300 });
  await setup.h.sim.addFaults({
    rules: [
      { route: 'GET /cvms/{id}/operations', cvmId: cvm.id, error: { status: 404 }, times: 1 },
      { route: 'GET /cvms/{id}/operations', cvmId: cvm.id, tamper: { set: [{ path: 'items', value: 'not a list' }] }, times: 2 },
    ],
  });
  const env = { A: secret() };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.applied, true);
  // Failure messages in history are encrypted by the codec; the attempt numbers are not.
  const history = await handle.fetchHistory();
  const attempts = (history.events ?? []).map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
  assert.equal(Math.max(...attempts), 4, 'one 404 and two malformed pages, each retried');
  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.timings.operatorMs, 0, 'no operator was needed');
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('an API that serves its own KMS key, with an env key it signed, is refused: the KMS key is read from the KMS contract', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'] });
  // A coherent forgery: a KMS key of the attacker's, and an env key the attacker can read,
  // properly signed with it. Only the chain can tell.
  const attackerKms = `0x${randomBytes(32).toString('hex')}`;
  const attackerEnv = generateEnvKeyPair();
  const timestamp = Math.floor(Date.now() / 1000);
  const appId = cvm.appId.replace(/^0x/, '').toLowerCase();
  const signature_v1 = signEnvEncryptPublicKey({ publicKey: attackerEnv.publicKey, appId, kmsPrivateKey: attackerKms, timestamp });
  const signature = signEnvEncryptPublicKey({ publicKey: attackerEnv.publicKey, appId, kmsPrivateKey: attackerKms });
  await setup.h.sim.addFaults({
    rules: [
      { route: 'GET /kms', tamper: { set: [{ path: 'items.[*].k256_pubkey', value: kmsPublicKeyFromPrivate(attackerKms) }] }, times: 1 },
      {
        route: 'GET /kms/{kms_id}/pubkey/{app_id}',
        tamper: {
          set: [
            { path: 'public_key', value: attackerEnv.publicKey },
            { path: 'signature_v1', value: signature_v1 },
            { path: 'signature', value: signature },
            { path: 'timestamp', value: timestamp },
          ],
        },
        times: 1,
      },
    ],
  });
  const value = secret();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: value } }, { taskQueue: setup.h.taskQueue });
  const waiting = await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator', 20_000);
  assert.match(waiting.waitingFor ?? '', /does not match the key in the KMS contract/);
  assert.equal(waiting.attempts.phase1, undefined, 'nothing encrypted to the forged key was sent');
  assertClean(waiting.waitingFor ?? '', value);
  await abortEnvUpdate(setup.h.client, cvm.id, 'forged KMS key');
  await assert.rejects(awaitEnvUpdate(handle));
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, {});
});
