// The API side going wrong: 467 while its RPC lags, 466 for an expired hash, 5xx and 429.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { registrationsOf } from './support/registrations.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

const newKey = () => `K_${randomBytes(4).toString('hex').toUpperCase()}`;

test("467 three times (the API's RPC lags), then phase 2 succeeds", async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'] });
  await setup.h.sim.addFaults({ phase2Lag: [{ cvmId: cvm.id, calls: 3 }] });
  const env = { A: 'a', [newKey()]: randomBytes(8).toString('hex') };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.attempts.phase2, 4, JSON.stringify(status.attempts));
  assert.ok(result.transactionHash && result.composeHash);
  // Other test files share the signer key, so a nonce race may add a signing; what a 467
  // must never cause is a second registration.
  assert.deepEqual(await registrationsOf(setup.stack.info.rpcUrl, cvm.appId, result.composeHash), [result.transactionHash]);
  assert.equal(new Set(status.sentTransactions.map((t) => t.nonce)).size, status.sentTransactions.length, 'no re-signing at one nonce');
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('466 (hash expired before phase 2): phase 1 again, the registration is reused', async () => {
  // The TTL is longer than the second round's path (phase 1, the registration found, phase 2) but
  // shorter than the first round's: the confirmation block (1 s) plus one 467 and its 1 s wait.
  // Without the 467 a registration mined at once could beat the TTL, and no 466 would come.
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A'], pendingTtlMs: 1500 });
  await setup.h.sim.addFaults({ phase2Lag: [{ cvmId: cvm.id, calls: 1 }] });
  const env = { A: 'a', [newKey()]: randomBytes(8).toString('hex') };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.ok((status.attempts.phase1 ?? 0) >= 2, `phase 1 ran ${status.attempts.phase1} times`);
  assert.ok((status.attempts.chainPreflight ?? 0) >= 2, 'the second round checked the chain again');
  assert.deepEqual(
    await registrationsOf(setup.stack.info.rpcUrl, cvm.appId, result.composeHash!),
    [result.transactionHash],
    'the second round found and reused the first registration',
  );
  assert.ok(status.sentTransactions.some((t) => t.hash === result.transactionHash));
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('5xx and 429 on phase 1 are retried (honouring Retry-After) and show as attempts', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  await setup.h.sim.addFaults({
    rules: [
      { route: 'PATCH /cvms/{id}/envs', cvmId: cvm.id, error: { status: 503 }, times: 2 },
      { route: 'PATCH /cvms/{id}/envs', cvmId: cvm.id, rateLimit: { retryAfterSeconds: 2 }, times: 1 },
    ],
  });
  const env = { ONLY: randomBytes(8).toString('hex') };
  const started = Date.now();
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  await awaitEnvUpdate(handle);
  assert.ok(Date.now() - started >= 2000, 'Retry-After of 2 s was honoured');
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
  const history = await handle.fetchHistory();
  const phase1Attempts = history.events
    ?.filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
  assert.ok(Math.max(...(phase1Attempts ?? [1])) >= 4, `attempts seen: ${phase1Attempts}`);
});
