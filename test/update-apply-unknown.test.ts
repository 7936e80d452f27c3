// An accepted change whose operation the API never lists, on a CVM that is idle: whether it
// was applied is unknown, so after APPLY_UNLISTED_GRACE_SECONDS the update waits for an
// operator instead of assuming "applied"; a retry once the operation shows up finishes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, retryEnvUpdate, startEnvUpdate } from '../src/client.ts';
import { createHarness, useUpdateHarness } from './support/update-harness.ts';
import { waitForStatus } from './support/wait.ts';

const setup = useUpdateHarness();

test('operation not listed and the CVM idle: after the configured grace an operator is asked; retry then completes', async () => {
  // A worker of its own, on its own task queue, with a one-second grace from the environment.
  const h = await createHarness(setup.stack);
  const worker = await h.startWorker({ APPLY_UNLISTED_GRACE_SECONDS: '1' });
  try {
    const cvm = await h.newCvm({ kms: 'phala' });
    // The API answers with an empty operation list for this CVM: the change's record is missing.
    await h.sim.addFaults({
      rules: [{ route: 'GET /cvms/{id}/operations', cvmId: cvm.id, tamper: { set: [{ path: 'items', value: [] }] } }],
    });
    const env = { ONLY: randomBytes(8).toString('hex') };
    const started = Date.now();
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
    const waiting = await waitForStatus(h.client, cvm.id, (s) => s.phase === 'awaiting_operator');
    assert.match(
      waiting.waitingFor ?? '',
      /not among the operations of CVM .* and the CVM is idle: whether the change was applied is unknown/,
    );
    // The simulator applies at once, so the wait is the grace, not the default two minutes.
    assert.ok(Date.now() - started < 60_000, `asked after ${Date.now() - started} ms`);

    await h.sim.removeFaults({ cvmId: cvm.id });
    await retryEnvUpdate(h.client, cvm.id);
    const result = await awaitEnvUpdate(handle);
    assert.ok(result.correlationId);
    assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
  } finally {
    await worker.stop();
    await h.close();
  }
});
