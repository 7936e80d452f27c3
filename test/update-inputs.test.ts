// Bad input fails at once, with a message that names the problem and never a value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { awaitEnvUpdate, InvalidUpdateInputError, startEnvUpdate, type EnvUpdateHandle, type UpdateEnvInput } from '../src/client.ts';
import { FAILURE } from '../src/failure-types.ts';
import { WORKFLOW_TYPE } from '../src/workflows/definitions.ts';
import { createHarness, useUpdateHarness } from './support/update-harness.ts';
import { activityCalls } from './support/activity-calls.ts';

const setup = useUpdateHarness();

/** The innermost failure message: what an operator reads in the UI. */
async function failureOf(handle: EnvUpdateHandle | WorkflowHandle): Promise<{ message: string; seconds: number }> {
  const started = Date.now();
  try {
    await awaitEnvUpdate(handle as EnvUpdateHandle);
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let cause: unknown = err.cause;
    const messages: string[] = [];
    while (cause instanceof Error) {
      messages.push(cause.message);
      cause = (cause as { cause?: unknown }).cause;
    }
    return { message: messages.join(' / '), seconds: (Date.now() - started) / 1000 };
  }
  throw new Error('the workflow did not fail');
}

/**
 * A start that bypasses startEnvUpdate, as the Temporal UI or another SDK would: the workflow's
 * own check must catch what the client would have.
 */
async function rawStart(input: unknown): Promise<WorkflowHandle> {
  return setup.h.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: `raw-input-${randomUUID()}`,
    taskQueue: setup.h.taskQueue,
    args: [input],
  });
}

/** The workflow failed at once with InvalidInput, scheduled no activity, and named every field. */
async function assertRefusedInWorkflow(input: unknown, fields: string[]): Promise<string> {
  const handle = await rawStart(input);
  const started = Date.now();
  let failure: unknown;
  try {
    await handle.result();
  } catch (err) {
    failure = err;
  }
  const seconds = (Date.now() - started) / 1000;
  assert.ok(failure instanceof WorkflowFailedError, `the workflow did not fail: ${String(failure)}`);
  const cause = failure.cause;
  assert.ok(cause instanceof ApplicationFailure, String(cause));
  assert.equal(cause.type, FAILURE.InvalidInput);
  assert.equal(cause.nonRetryable, true);
  for (const field of fields) assert.match(cause.message, new RegExp(`\\b${field}\\b`), `${field} not named in: ${cause.message}`);
  const [details] = cause.details as [{ problems: { field: string }[] }];
  assert.deepEqual(
    details.problems.map((p) => p.field.replace(/\[\d+\]$/, '')),
    fields,
  );
  const events = (await handle.fetchHistory()).events ?? [];
  assert.equal(activityCalls(events).length, 0, 'an activity was scheduled');
  assert.equal(events.filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'a workflow task failed (retried) first');
  assert.ok(events.some((e) => e.workflowExecutionFailedEventAttributes));
  assert.ok(seconds < 10, `took ${seconds} s`);
  return cause.message;
}

test('a raw start with bad input fails at once with InvalidInput naming each field; no activity runs', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const env = { A: 'value-a-1234' };
  const cases: [Record<string, unknown>, string[]][] = [
    [{ cvmId: '..', env }, ['cvmId']],
    [{ cvmId: cvm.id, env, composeHashPolicy: 'STRICT' }, ['composeHashPolicy']],
    [{ cvmId: cvm.id, env, confirmations: 0 }, ['confirmations']],
    [{ cvmId: cvm.id, env, requestId: 'has a space' }, ['requestId']],
    [{ cvmId: cvm.id, env, confirmations: 1e9 }, ['confirmations']],
    [
      { cvmId: '../envs', env, composeHashPolicy: 'lenient', confirmations: 0, requestId: 'a b' },
      ['cvmId', 'requestId', 'confirmations', 'composeHashPolicy'],
    ],
  ];
  for (const [input, fields] of cases) {
    const message = await assertRefusedInWorkflow(input, fields);
    assert.ok(!message.includes('value-a-1234'));
    await assert.rejects(
      startEnvUpdate(setup.h.client, input as unknown as UpdateEnvInput, { taskQueue: setup.h.taskQueue }),
      (err: unknown) => err instanceof InvalidUpdateInputError && err.message === message,
    );
  }
  // Nothing reached the CVM.
  assert.equal((await setup.h.sim.appliedEnv(cvm.id)).correlation_id, null);
});

test('bad key names: every offending key named, no value shown', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const input = { cvmId: cvm.id, env: { '1BAD': 'value-one-1234', 'GOOD-NOT': 'value-two-5678', FINE: 'ok' } };
  const message = await assertRefusedInWorkflow(input, ['env', 'env']);
  assert.match(message, /invalid input \(2 problems\)/);
  assert.match(message, /1BAD/);
  assert.match(message, /GOOD/);
  assert.doesNotMatch(message, /value-one-1234|value-two-5678/);
  await assert.rejects(startEnvUpdate(setup.h.client, input, { taskQueue: setup.h.taskQueue }), InvalidUpdateInputError);
});

test('an oversized value is named by its key', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const big = 'x'.repeat(128 * 1024 + 1);
  const message = await assertRefusedInWorkflow({ cvmId: cvm.id, env: { HUGE: big } }, ['env']);
  assert.match(message, /HUGE/);
  assert.match(message, /131072|128 KiB/);
  assert.doesNotMatch(message, /xxxxxxxxxx/);
});

test('allowedKeys must cover the env (the guest would drop the rest silently)', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const message = await assertRefusedInWorkflow({ cvmId: cvm.id, env: { A: '1', B: '2' }, allowedKeys: ['A'] }, ['allowedKeys']);
  assert.match(message, /allowedKeys must include every env key; missing: B/);
});

test("an unknown CVM fails at once with the API's 404", async () => {
  const { handle } = await startEnvUpdate(
    setup.h.client,
    { cvmId: 'cvm_does_not_exist', env: { A: '1' } },
    { taskQueue: setup.h.taskQueue },
  );
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /404 not_found/);
  assert.ok(seconds < 10, `took ${seconds} s`);
});

test('a wrong API key fails at once with 401, and the key is not in the message', async () => {
  const wrongKey = 'phak_wrong_key_for_this_test_0123456789';
  const other = await createHarness(setup.stack);
  try {
    await other.startWorker({ PHALA_API_KEY: wrongKey });
    const cvm = await setup.h.newCvm({ kms: 'phala' });
    const { handle } = await startEnvUpdate(other.client, { cvmId: cvm.id, env: { A: '1' } }, { taskQueue: other.taskQueue });
    const { message, seconds } = await failureOf(handle);
    assert.match(message, /401 auth/);
    assert.ok(!message.includes(wrongKey));
    assert.ok(seconds < 10, `took ${seconds} s`);
  } finally {
    await other.close();
  }
});

test('the client refuses malformed input before starting anything', async () => {
  await assert.rejects(
    startEnvUpdate(setup.h.client, { cvmId: '', env: { A: '1' } }, { taskQueue: setup.h.taskQueue }),
    /cvmId is required/,
  );
  await assert.rejects(
    startEnvUpdate(setup.h.client, { cvmId: 'x', env: { A: '1' }, confirmations: 0 }, { taskQueue: setup.h.taskQueue }),
    /confirmations must be an integer from 1 to 256 \(got 0\)/,
  );
  await assert.rejects(
    // @ts-expect-error: the policy is checked at run time too
    startEnvUpdate(setup.h.client, { cvmId: 'x', env: { A: '1' }, composeHashPolicy: 'lenient' }, { taskQueue: setup.h.taskQueue }),
    /composeHashPolicy must be/,
  );
});
