import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { registrationsOf } from './support/registrations.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

const secret = () => `s3cr3t-${randomBytes(12).toString('hex')}`;

test('on-chain KMS, new allowed keys: phase 1 → registration → confirmations → phase 2 → applied', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['OLD_KEY'] });
  const env = { API_TOKEN: secret(), DATABASE_URL: `postgres://u:${secret()}@db/app` };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env, requestId: `req-${cvm.id}` }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);

  assert.equal(result.kms, 'onchain');
  assert.equal(result.applied, true);
  assert.equal(result.allowedEnvsChanged, true);
  assert.match(result.composeHash ?? '', /^[0-9a-f]{64}$/);
  assert.match(result.transactionHash ?? '', /^0x[0-9a-f]{64}$/);
  assert.deepEqual(await registrationsOf(setup.stack.info.rpcUrl, cvm.appId, result.composeHash!), [result.transactionHash]);

  const applied = await setup.h.sim.appliedEnv(cvm.id);
  assert.deepEqual(applied.env, env);
  assert.equal(applied.compose_hash, result.composeHash);
  assert.equal(applied.correlation_id, result.correlationId);

  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.phase, 'completed');
  assert.ok((status.confirmations ?? 0) >= (status.requiredConfirmations ?? 1));
  assert.ok(result.timings.chainMs > 0 && result.timings.apiMs > 0);
});

test('Phala KMS: one phase, no chain', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const env = { ONLY_HERE: secret() };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.kms, 'phala');
  assert.equal(result.transactionHash, undefined);
  assert.equal(result.timings.chainMs, 0);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('on-chain KMS, same keys new values: no registration', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A', 'B'] });
  const env = { A: secret(), B: secret() };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.allowedEnvsChanged, false);
  assert.equal(result.transactionHash, undefined);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});
