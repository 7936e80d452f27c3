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
import { abortRolloutUpdate, rolloutStatusQuery } from '../src/workflows/rollout/definitions.ts';

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

test('a malformed abort is refused with the reason and leaves the rollout running; a well-formed one still aborts', async () => {
  const taskQueue = `rollout-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./fixtures/rollout-workflows.ts', import.meta.url)),
    activities: {
      async validateInput() {
        return { env: [], envKeys: ['A'] };
      },
      async listAppCvms() {
        return { cvmIds: ['cvm-1', 'cvm-2', 'cvm-3'] };
      },
    },
  });
  const rolloutId = `abort-${randomUUID()}`;
  const handle = await env.client.workflow.start<typeof rolloutWorkflow>('rolloutWorkflow', {
    workflowId: `rollout-${rolloutId}`,
    taskQueue,
    args: [{ rolloutId, targets: { appId: '0x00000000000000000000000000000000000000a1' }, env: { A: 'x' }, canary: 1 }],
  });
  await worker.runUntil(async () => {
    // The canary child takes a minute of workflow time: skip it.
    await env.sleep('2 minutes');
    for (;;) {
      const s = await handle.query(rolloutStatusQuery);
      if (s.state === 'awaiting_approval') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const abort = handle.executeUpdate as (u: unknown, o: { args: unknown[] }) => Promise<unknown>;
    const refusals: [unknown, RegExp][] = [
      [{ reason: 42 }, /cannot abort: .*reason as a number/],
      ['stop it', /cannot abort: .*bare string/],
      [{ reason: 'x', force: true }, /cannot abort: .*unknown field "force"/],
      [[1], /cannot abort: .*got a list of 1/],
    ];
    for (const [arg, expected] of refusals) {
      await assert.rejects(abort(abortRolloutUpdate, { args: [arg] }), (err: Error) =>
        expected.test(String((err.cause as Error)?.message)),
      );
    }
    const still = await handle.query(rolloutStatusQuery);
    assert.equal(still.state, 'awaiting_approval');
    assert.equal(still.abortReason, undefined);

    const done = (await handle.executeUpdate(abortRolloutUpdate, { args: [{ reason: 'changed our mind' }] })) as { abortReason?: string };
    assert.equal(done.abortReason, 'changed our mind');
    const result = await handle.result();
    assert.deepEqual(result.aborted.sort(), ['cvm-2', 'cvm-3']);
  });
  const { events } = await handle.fetchHistory();
  assert.equal((events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'no workflow task failed');
});
