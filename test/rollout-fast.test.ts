// A 1,000-CVM rollout on the time-skipping test server, its children stand-ins for the update
// workflow: history stays bounded (continue-as-new, progress carried), every CVM is booked
// once, failures keep their reason. The real children run in rollout.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import type { rolloutWorkflow } from '../src/workflows/rollout/workflow.ts';
import { rolloutStatusQuery } from '../src/workflows/rollout/definitions.ts';

let env: TestWorkflowEnvironment;
before(async () => {
  env = await createTimeSkippingEnv();
});
after(async () => {
  await env?.teardown();
});

test('1,000 CVMs: bounded history per run, every CVM booked once, failures with their reason', async () => {
  const taskQueue = `rollout-${randomUUID()}`;
  const cvmIds = Array.from({ length: 1000 }, (_, i) => `cvm-${i}${i % 250 === 7 ? '-bad' : ''}`);
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./fixtures/rollout-workflows.ts', import.meta.url)),
    activities: {
      async validateInput() {
        return { env: [], envKeys: ['A'] };
      },
      async listAppCvms() {
        return { cvmIds };
      },
    },
  });
  const rolloutId = `big-${randomUUID()}`;
  const maxEventsPerRun = 2000;
  const handle = await env.client.workflow.start<typeof rolloutWorkflow>('rolloutWorkflow', {
    workflowId: `rollout-${rolloutId}`,
    taskQueue,
    args: [
      { rolloutId, targets: { appId: '0x00000000000000000000000000000000000000a1' }, env: { A: 'x' }, concurrency: 50, maxEventsPerRun },
    ],
  });
  // The query needs the worker too: it replays the closed run.
  const { result, status } = await worker.runUntil(async () => ({
    result: await handle.result(),
    status: await handle.query(rolloutStatusQuery),
  }));
  assert.equal(result.total, 1000);
  assert.equal(result.succeeded, 996);
  assert.deepEqual(result.failed.map((f) => f.cvmId).sort(), ['cvm-257-bad', 'cvm-507-bad', 'cvm-7-bad', 'cvm-757-bad']);
  for (const f of result.failed) assert.match(f.reason, /ApiRejected: .*403/);

  // Every run of the chain stayed near its event budget, far below Temporal's 50K limit.
  const runs: number[] = [];
  for (let runId: string | undefined = handle.firstExecutionRunId; runId;) {
    const history = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    const events: NonNullable<typeof history.events> = history.events ?? [];
    runs.push(events.length);
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  assert.ok(runs.length >= 2, `ran in ${runs.length} run(s)`);
  for (const n of runs) assert.ok(n < maxEventsPerRun + 400, `a run had ${n} events`);
  assert.equal(status.runs, runs.length);
  assert.deepEqual(status.counts, { pending: 0, running: 0, succeeded: 996, failed: 4, aborted: 0 });
});
