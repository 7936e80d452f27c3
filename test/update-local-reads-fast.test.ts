// The update workflow's quick reads as local activities, on the time-skipping test server with
// stub activities: a read whose retries run out still waits for an operator through its step,
// booked to that step, and an abort leaves a read that hangs at once. The same reads run end to
// end against the simulator and anvil in the update-*.test.ts files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Context } from '@temporalio/activity';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { abortEnvUpdate, envUpdateHandle, getEnvUpdateStatus, retryEnvUpdate, startEnvUpdate } from '../src/client.ts';
import type { CvmTarget } from '../src/activities/types.ts';
import { UpdatePhaseAttribute } from '../src/workflows/definitions.ts';
import { workflowBundleOptions } from '../src/workflow-bundling.ts';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import { waitFor, waitForStatus } from './support/wait.ts';

let env: TestWorkflowEnvironment;
let code: string;
before(async () => {
  env = await createTimeSkippingEnv();
  ({ code } = await bundleWorkflowCode(workflowBundleOptions()));
});
after(async () => {
  await env?.teardown();
});

type Stubs = Record<string, (...args: never[]) => Promise<unknown>>;

/**
 * A worker of its own with the activities `stubs` makes, for one CVM id of its own. `hang()`:
 * a call that ignores its cancellation and returns only once the case is over (a worker shuts
 * down only after its activities have returned).
 */
async function withWorker(
  stubs: (hang: () => Promise<never>) => Stubs,
  body: (cvmId: string, taskQueue: string) => Promise<void>,
): Promise<void> {
  const taskQueue = `local-reads-${randomUUID()}`;
  const cvmId = `cvm_${randomUUID().slice(0, 8)}`;
  let over!: () => void;
  const caseOver = new Promise<void>((r) => (over = r));
  const hang = () =>
    caseOver.then((): never => {
      throw new Error('the test case is over');
    });
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: { code }, activities: stubs(hang) });
  const running = worker.run();
  try {
    await body(cvmId, taskQueue);
  } finally {
    await envUpdateHandle(env.client, cvmId)
      .terminate('test over')
      .catch(() => {});
    over();
    worker.shutdown();
    await running;
  }
}

const phalaTarget = (cvmId: string): CvmTarget => ({ cvmId, appId: 'app-1', kms: 'phala', kmsType: 'phala' });

test('a local read whose retries run out waits for an operator in its step; retry reads again', { timeout: 120_000 }, async () => {
  let calls = 0;
  await withWorker(
    (hang) => ({
      async resolveCvm(a: { cvmId: string }) {
        if (++calls <= 12) throw new Error('the API answered 503');
        return phalaTarget(a.cvmId);
      },
      // Past the read: the change stays here until the case ends.
      getEncryptionKey: hang,
    }),
    async (cvmId, taskQueue) => {
      const { handle } = await startEnvUpdate(env.client, { cvmId, env: { A: 'a-value' } }, { taskQueue });
      // Pauses up to 2 s stay in the worker (real time); the longer ones are timers, skipped here.
      const waiting = await waitFor(
        'the step to wait for an operator',
        async () => {
          await env.sleep('30 seconds');
          const s = await getEnvUpdateStatus(env.client, cvmId);
          return s.phase === 'awaiting_operator' ? s : undefined;
        },
        60_000,
      );
      assert.equal(calls, 12, 'the retry policy ran all its attempts');
      assert.equal(waiting.waitingFor, 'resolveCvm kept failing: the API answered 503; signal retry or abort');
      assert.deepEqual(waiting.attempts, { resolveCvm: 1 }, 'one step, however many tries');
      // 1+2+4+8+16 s and six of 30 s between the tries: the step's time, booked to the API.
      assert.ok(waiting.timings.apiMs >= 211_000, `apiMs ${waiting.timings.apiMs}`);

      const history = await handle.fetchHistory();
      const events = history.events ?? [];
      assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes).length, 0, 'no activity task for the read');
      const markers = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
      const timers = events.filter((e) => e.timerStartedEventAttributes);
      // Attempts 1-3 in one go (pauses of 1 and 2 s), then one marker and one timer for each long pause.
      assert.equal(markers.length, 10, `${markers.length} local activity markers`);
      assert.equal(timers.length, 9, `${timers.length} backoff timers`);

      await retryEnvUpdate(env.client, cvmId);
      const reading = await waitForStatus(env.client, cvmId, (s) => s.phase === 'encrypting', 20_000);
      assert.equal(calls, 13);
      assert.equal(reading.attempts.resolveCvm, 2);
      assert.equal(reading.appId, 'app-1');
      // The search attribute left awaiting_operator with the retry (it skips the passing phase after it).
      const shown = (await handle.describe()).typedSearchAttributes.get(UpdatePhaseAttribute);
      assert.equal(shown, 'resolving', `UpdatePhase is ${shown}`);
    },
  );
});

test('an abort leaves a local read that hangs at once, without waiting for it', { timeout: 60_000 }, async () => {
  let started = false;
  let cancelSeen = false;
  await withWorker(
    (hang) => ({
      // Ignores its cancellation on purpose, as a call without a signal would.
      async resolveCvm() {
        started = true;
        Context.current().cancellationSignal.addEventListener('abort', () => (cancelSeen = true));
        return await hang();
      },
    }),
    async (cvmId, taskQueue) => {
      const { handle } = await startEnvUpdate(env.client, { cvmId, env: { A: 'a-value' } }, { taskQueue });
      await waitFor('the read to start', async () => started);
      const t0 = Date.now();
      await abortEnvUpdate(env.client, cvmId, 'stop it');
      await assert.rejects(handle.result(), (err: Error) => /aborted: stop it/.test(String((err.cause as Error | undefined)?.message)));
      const ms = Date.now() - t0;
      // The abort is seen when the workflow task running the read heartbeats (8 s of its 10 s
      // timeout), not once the read's 45 s start-to-close has passed.
      assert.ok(ms < 15_000, `aborted after ${ms} ms`);
      assert.equal((await getEnvUpdateStatus(env.client, cvmId)).phase, 'aborted');
      // The read was still told to stop.
      await waitFor('the read to see its cancellation', async () => cancelSeen, 5_000);
    },
  );
});
