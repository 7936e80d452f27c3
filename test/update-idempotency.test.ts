// A requestId is applied once, however many changes came after it: through the client helpers
// (attach or refuse) and through a raw start that bypasses them (the workflow's own guard).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  abortEnvUpdate,
  awaitEnvUpdate,
  getEnvUpdateStatus,
  RequestAlreadyUsedError,
  startEnvUpdate,
  type UpdateEnvInput,
} from '../src/client.ts';
import { WORKFLOW_TYPE, workflowIdForCvm } from '../src/workflows/definitions.ts';
import { FAILURE } from '../src/failure-types.ts';
import { useUpdateHarness } from './support/update-harness.ts';
import { waitFor } from './support/wait.ts';
import { activityCalls } from './support/activity-calls.ts';

const setup = useUpdateHarness();

const rid = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;
const secret = () => `v-${randomBytes(8).toString('hex')}`;
const start = (input: UpdateEnvInput) => startEnvUpdate(setup.h.client, input, { taskQueue: setup.h.taskQueue });

async function appliedChange(input: UpdateEnvInput) {
  const started = await start(input);
  assert.equal(started.attached, false, `${input.requestId} starts a change`);
  const result = await awaitEnvUpdate(started.handle);
  // Read while it is still the latest run of the workflow id.
  return { started, result, runId: (await started.handle.describe()).runId };
}

test('r1 applied, r2 applied, r1 again: attaches to r1 and the CVM keeps r2', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const r1 = { cvmId: cvm.id, env: { TOKEN: secret() }, requestId: rid('r1') };
  const r2 = { cvmId: cvm.id, env: { TOKEN: secret() }, requestId: rid('r2') };
  const first = await appliedChange(r1);
  await appliedChange(r2);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, r2.env);

  const again = await start(r1);
  assert.equal(again.attached, true, 'r1 is not started a second time');
  assert.equal((await again.handle.describe()).runId, first.runId);
  const result = await awaitEnvUpdate(again.handle);
  assert.equal(result.correlationId, first.result.correlationId, "r1's own result");
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, r2.env, "the CVM still holds r2's values");
  assert.equal((await getEnvUpdateStatus(setup.h.client, cvm.id)).correlationId, (await setup.h.sim.appliedEnv(cvm.id)).correlation_id);
});

test('a request that was aborted is refused, naming the run and its outcome', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala', applyDelayMs: 60_000 });
  const r1 = { cvmId: cvm.id, env: { TOKEN: secret() }, requestId: rid('r1') };
  const { handle } = await start(r1);
  await waitFor('the change to apply', async () => (await getEnvUpdateStatus(setup.h.client, cvm.id)).phase === 'applying');
  await abortEnvUpdate(setup.h.client, cvm.id, 'changed my mind');
  await assert.rejects(awaitEnvUpdate(handle), WorkflowFailedError);
  const runId = (await handle.describe()).runId;

  await assert.rejects(start(r1), (err: unknown) => {
    assert.ok(err instanceof RequestAlreadyUsedError, String(err));
    assert.equal(err.earlier.outcome, 'aborted');
    assert.equal(err.earlier.runId, runId);
    assert.match(err.message, new RegExp(`${r1.requestId}.*${runId}.*aborted`));
    return true;
  });
});

test('a raw start that bypasses the client with a used requestId fails as DuplicateRequest and sends nothing', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const r1 = { cvmId: cvm.id, env: { TOKEN: secret() }, requestId: rid('r1') };
  const r2 = { cvmId: cvm.id, env: { TOKEN: secret() }, requestId: rid('r2') };
  const first = await appliedChange(r1);
  await appliedChange(r2);
  const before = await setup.h.sim.appliedEnv(cvm.id);

  // As the Temporal UI or another SDK would: no memo, no search attribute, only the input.
  const raw = await setup.h.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: workflowIdForCvm(cvm.id),
    taskQueue: setup.h.taskQueue,
    args: [r1],
  });
  const firstRunId = first.runId;
  await assert.rejects(raw.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, FAILURE.DuplicateRequest);
    assert.match(err.cause.message, new RegExp(`request ${r1.requestId} was already used by run ${firstRunId}.*completed`));
    return true;
  });
  const history = await raw.fetchHistory();
  const activities = activityCalls(history.events ?? []);
  // The input is checked in the workflow itself; the guard is the only activity.
  assert.deepEqual(activities, ['findEarlierRequest'], 'no API call: not even the CVM was read');
  const after = await setup.h.sim.appliedEnv(cvm.id);
  assert.deepEqual(after.env, r2.env);
  assert.equal(after.correlation_id, before.correlation_id, 'no change reached the CVM');

  // Asked again through the client, r1 still attaches to its own completed change.
  const again = await start(r1);
  assert.equal(again.attached, true);
  assert.equal((await awaitEnvUpdate(again.handle)).correlationId, first.result.correlationId);
});
