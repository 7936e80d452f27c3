// SIGKILL of the worker process at each stage of an on-chain update: a new worker must
// finish it from history, with exactly one registration mined and the right env applied.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, getSignerStatus, startEnvUpdate } from '../src/client.ts';
import { registrationsOf } from './support/registrations.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { createHarness } from './support/update-harness.ts';

let stack: TestStack;

before(async () => {
  stack = await useStack();
});
after(async () => {
  await stack?.release();
});

const STAGES = [
  { stage: 'after phase 1', crashBefore: 'checkComposeHash' },
  { stage: 'after signing, before broadcast', crashBefore: 'broadcastTransactions' },
  { stage: 'while the registration is followed', crashBefore: 'observeSignerTransactions' },
  { stage: 'after phase 2', crashBefore: 'observeApplied' },
];

// Concurrent: each case has its own task queue and workers, and most of a case is waiting
// for Temporal to notice the dead worker (heartbeat and sticky-queue timeouts).
describe('crash recovery', { concurrency: STAGES.length }, () => {
  for (const { stage, crashBefore } of STAGES) {
    test(`worker SIGKILLed ${stage}: a new worker finishes with one registration`, async () => {
      const h = await createHarness(stack);
      try {
        // A fresh key per CVM makes every compose hash new, so each case really registers.
        const newKey = `K_${randomBytes(4).toString('hex').toUpperCase()}`;
        const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
        const env = { BASE: randomBytes(8).toString('hex'), [newKey]: randomBytes(8).toString('hex') };

        const doomed = h.spawnWorker({ WORKER_CRASH_BEFORE_ACTIVITY: crashBefore, LOG_LEVEL: 'ERROR' });
        const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
        const code = await doomed.exited;
        assert.equal(code, null, 'the first worker should have been killed by a signal');
        const before = await getEnvUpdateStatus(h.client, cvm.id).catch(() => undefined);

        const rescuer = await h.startWorker();
        try {
          const result = await awaitEnvUpdate(handle);
          assert.equal(result.applied, true);
          assert.ok(result.composeHash && result.transactionHash);
          assert.deepEqual(await registrationsOf(stack.info.rpcUrl, cvm.appId, result.composeHash), [result.transactionHash]);
          assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
          const status = await getEnvUpdateStatus(h.client, cvm.id);
          // The signed bytes are sent again after the crash, not signed anew.
          const sent = status.sentTransactions;
          assert.deepEqual(
            sent.map((t) => t.hash),
            [result.transactionHash],
            JSON.stringify(sent),
          );
          const manager = await getSignerStatus(h.client, stack.info.chainId, h.signer.address);
          assert.equal(manager.stats.signed, 1, JSON.stringify(manager.stats));
          assert.equal(manager.stats.replaced, 0, JSON.stringify(manager.stats));
          if (before) assert.notEqual(before.phase, 'completed');
        } finally {
          await rescuer.stop();
        }
      } finally {
        await h.close();
      }
    });
  }
});
