// An apply that takes days, on the time-skipping test server with stub activities: the wait
// pauses on growing timers, every run's history stays small, the workflow continues as new,
// and when the CVM finally applies the change the result is the one the first run accepted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import protos from '@temporalio/proto';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import { sealEnvelope } from '../src/activities/sealed-env-reader.ts';
import { WORKFLOWS_PATH } from '../src/workflow-bundling.ts';
import { HISTORY_BUDGET } from '../src/workflows/bounded-wait.ts';
import {
  CvmIdAttribute,
  RequestIdAttribute,
  WORKFLOW_TYPE,
  type UpdateEnvInput,
  type UpdateEnvResult,
} from '../src/workflows/definitions.ts';
import type { ApplyObservation, CvmTarget, SubmitEnvOutcome } from '../src/activities/types.ts';

const DAY_MS = 24 * 60 * 60_000;
const APPLIED_AFTER_MS = 3 * DAY_MS;

let env: TestWorkflowEnvironment;
before(async () => {
  env = await createTimeSkippingEnv();
});
after(async () => {
  await env?.teardown();
});

/** The activities the update workflow calls for a Phala-KMS change, the CVM applying it only after `APPLIED_AFTER_MS`. */
function stubActivities() {
  const calls: Record<string, number> = {};
  const watched = new Set<string>();
  let firstObservedAt: number | undefined;
  const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
  const target: CvmTarget = { cvmId: 'cvm_slow', appId: 'app_slow', kms: 'phala', kmsType: 'phala', encryptedEnvPubkey: '00'.repeat(32) };
  const activities = {
    async validateInput(a: { env: Record<string, string> }) {
      count('validateInput');
      return { env: Object.entries(a.env).map(([key, value]) => ({ key, value })), envKeys: Object.keys(a.env) };
    },
    async findEarlierRequest() {
      count('findEarlierRequest');
      return { found: false };
    },
    async resolveCvm() {
      count('resolveCvm');
      return target;
    },
    async getEncryptionKey() {
      return { publicKey: target.encryptedEnvPubkey, source: 'cvm-record' };
    },
    async sealEnv() {
      return sealEnvelope(new Uint8Array(40).fill(0xab));
    },
    async submitEnvUpdate(): Promise<SubmitEnvOutcome> {
      count('submitEnvUpdate');
      return { kind: 'in_progress', correlationId: 'corr-slow', allowedEnvsChanged: false };
    },
    async observeApplied(a: { correlationId: string }): Promise<ApplyObservation> {
      count('observeApplied');
      watched.add(a.correlationId);
      // The server's clock, which the test server moves forward while the workflow sleeps.
      const now = Context.current().info.currentAttemptScheduledTimestampMs;
      firstObservedAt ??= now;
      return now - firstObservedAt >= APPLIED_AFTER_MS ? { state: 'applied' } : { state: 'pending', detail: 'CVM updating' };
    },
  };
  return { activities, calls, watched };
}

test('an apply that takes 3 days: bounded history per run, continue-as-new, the same result', { timeout: 300_000 }, async () => {
  const taskQueue = `bounded-${randomUUID()}`;
  const { activities, calls, watched } = stubActivities();
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: WORKFLOWS_PATH, activities });
  const workflowId = `cvm-env-slow-${randomUUID()}`;
  const input: UpdateEnvInput = { cvmId: 'cvm_slow', env: { TOKEN: 'secret-value' }, requestId: 'req-slow' };

  const { result, firstRunId } = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start(WORKFLOW_TYPE, {
      workflowId,
      taskQueue,
      args: [input],
      memo: { requestId: input.requestId },
      typedSearchAttributes: [
        { key: CvmIdAttribute, value: input.cvmId },
        { key: RequestIdAttribute, value: input.requestId! },
      ],
    });
    return { result: (await handle.result()) as UpdateEnvResult, firstRunId: handle.firstExecutionRunId };
  });

  assert.equal(result.applied, true);
  assert.equal(result.correlationId, 'corr-slow');
  assert.equal(result.kms, 'phala');
  assert.ok((result.timings.totalMs ?? 0) >= APPLIED_AFTER_MS, `timings span every run (${result.timings.totalMs} ms)`);
  assert.deepEqual(
    result.timings.phases.map((p) => p.phase),
    ['validating', 'resolving', 'encrypting', 'phase1', 'applying'],
  );
  const applying = result.timings.phases.at(-1)!.ms;
  assert.ok(applying >= APPLIED_AFTER_MS && applying < APPLIED_AFTER_MS + DAY_MS, `the apply phase spans the runs (${applying} ms)`);
  assert.equal(calls.submitEnvUpdate, 1, 'the change was submitted once, by the first run');
  assert.deepEqual([...watched], ['corr-slow'], 'continued runs watch the change the first run submitted');
  assert.equal(calls.findEarlierRequest, 1, 'the request guard ran once, not in continued runs');

  // Follow the chain of runs: every one stays under the budget, with one slice's margin.
  const runs: { runId: string; events: number; timers: number[] }[] = [];
  for (let runId: string | undefined = firstRunId; runId;) {
    const history: protos.temporal.api.history.v1.IHistory = await env.client.workflow
      .getHandle(workflowId, runId, { followRuns: false })
      .fetchHistory();
    const events = history.events ?? [];
    runs.push({
      runId,
      events: events.length,
      timers: events.flatMap((e) => {
        const t = e.timerStartedEventAttributes?.startToFireTimeout;
        return t ? [Number(t.seconds ?? 0)] : [];
      }),
    });
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  assert.ok(runs.length >= 3, `continued as new (${runs.length} runs)`);
  for (const r of runs) {
    assert.ok(r.events <= HISTORY_BUDGET + 20, `run ${r.runId}: ${r.events} events`);
  }
  const total = runs.reduce((sum, r) => sum + r.events, 0);
  assert.ok(total < 4_000 * 3, `the pauses keep a day under 4,000 events (${total} in 3 days)`);
  assert.ok(runs.flatMap((r) => r.timers).includes(300), 'the pause grows to its 5-minute cap');
  assert.ok((calls.observeApplied ?? 0) < 1_200, `${calls.observeApplied} polling slices in 3 days`);
});
