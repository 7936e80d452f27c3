// The time-skipping test server: days of workflow timers pass in a moment of wall time.
// Needs no local stack; `npm test` installs the server when missing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import { approveSignal, type ReminderActivities } from './fixtures/time-skipping-workflows.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const taskQueue = `time-skipping-${randomUUID()}`;
const reminders: string[] = [];
const activities: ReminderActivities = {
  async sendReminder(to) {
    reminders.push(to);
    return `reminded ${to}`;
  },
};

let env: TestWorkflowEnvironment;
let worker: Worker | undefined;
let workerRun: Promise<void> | undefined;
let envStartMs = 0;

before(async () => {
  const started = performance.now();
  env = await createTimeSkippingEnv();
  envStartMs = performance.now() - started;
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./fixtures/time-skipping-workflows.ts', import.meta.url)),
    activities,
  });
  workerRun = worker.run();
});

// The worker first (it polls the server), then the server.
async function stopAll(): Promise<void> {
  if (worker && worker.getState() === 'RUNNING') worker.shutdown();
  await workerRun;
  await env?.teardown();
}
after(stopAll);

test('a workflow that sleeps 2 days completes in seconds of wall time', { timeout: 60_000 }, async (t) => {
  t.diagnostic(`test server (JVM) ready in ${Math.round(envStartMs)} ms`);
  const serverTimeBefore = await env.currentTimeMs();
  const started = performance.now();
  const result = await env.client.workflow.execute('remindAfter', {
    taskQueue,
    workflowId: `remind-${randomUUID()}`,
    args: ['ops', '2 days'],
  });
  const wallMs = performance.now() - started;
  t.diagnostic(`2 days of workflow sleep took ${Math.round(wallMs)} ms of wall time`);

  assert.deepEqual(result.receipt, 'reminded ops');
  assert.deepEqual(reminders, ['ops']);
  assert.ok(result.workflowElapsedMs >= 2 * DAY_MS, `workflow time passed: ${result.workflowElapsedMs} ms`);
  assert.ok((await env.currentTimeMs()) - serverTimeBefore >= 2 * DAY_MS, 'the server clock moved by the 2 days');
  assert.ok(wallMs < 30_000, `took ${Math.round(wallMs)} ms of wall time`);
});

test('a condition timeout is skipped too, unless the signal arrives before the result is awaited', { timeout: 60_000 }, async () => {
  const waiting = await env.client.workflow.start('awaitApproval', {
    taskQueue,
    workflowId: `approval-${randomUUID()}`,
    args: ['7 days'],
  });
  // Time is locked between start and result(): the 7 days cannot run out before the signal.
  await waiting.signal(approveSignal);
  assert.equal(await waiting.result(), 'approved');

  const started = performance.now();
  const unanswered = await env.client.workflow.execute('awaitApproval', {
    taskQueue,
    workflowId: `approval-${randomUUID()}`,
    args: ['7 days'],
  });
  assert.equal(unanswered, 'timed out');
  const wallMs = performance.now() - started;
  assert.ok(wallMs < 30_000, `the 7-day timeout took ${Math.round(wallMs)} ms of wall time`);
});

test('teardown stops the worker, the server JVM and its watcher', { timeout: 30_000 }, async () => {
  const port = env.address.split(':').pop();
  // The JVM (`java … io.temporal.testserver.TestServer <port>`) and the wrapper's parent watcher.
  const serverProcesses = () =>
    execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => /io\.temporal\.testserver\.TestServer|temporal-test-server/.test(line) && line.trim().endsWith(` ${port}`));
  const before = serverProcesses();
  assert.equal(
    before.filter((line) => line.includes('io.temporal.testserver.TestServer')).length,
    1,
    `before teardown: ${before.join(' | ')}`,
  );

  await stopAll();
  assert.equal(worker?.getState(), 'STOPPED');
  assert.equal(
    serverProcesses().filter((line) => line.includes('io.temporal.testserver.TestServer')).length,
    0,
    'the JVM is gone when teardown resolves',
  );
  const deadline = Date.now() + 2_000;
  while (serverProcesses().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(serverProcesses(), [], 'nothing of the server is left');
});
