// A 202 that never reaches the worker (the connection closes after the API accepted the
// change) must not apply the change twice: the retry finds the operation its earlier attempt
// started and follows it. Counted in the CVM's own operation list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { CvmOperationsPageSchema } from '../src/phala/api-schemas.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

const newKey = () => `K_${randomBytes(4).toString('hex').toUpperCase()}`;

async function operationsOf(cvmId: string) {
  const res = await fetch(`${setup.stack.env.PHALA_API_URL}/cvms/${cvmId}/operations`, {
    headers: { 'X-API-Key': setup.stack.env.PHALA_API_KEY! },
  });
  assert.equal(res.status, 200);
  return CvmOperationsPageSchema.parse(await res.json()).items;
}

async function lostAccept(kms: 'phala' | 'onchain', env: Record<string, string>, allowedEnvs: string[]) {
  const cvm = await setup.h.newCvm(kms === 'onchain' ? { kms, appId: setup.h.appId(true), allowedEnvs } : { kms, allowedEnvs });
  assert.equal((await operationsOf(cvm.id)).length, 0);
  await setup.h.sim.addFaults({ rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: cvm.id, drop: { when: 'accepted' }, times: 1 }] });
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  const ops = await operationsOf(cvm.id);
  assert.equal(ops.length, 1, `applied exactly once: ${JSON.stringify(ops.map((o) => [o.operation_type, o.status]))}`);
  assert.equal(ops[0]!.status, 'completed');
  assert.equal(result.correlationId, ops[0]!.correlation_id, 'the workflow followed the operation its lost 202 started');
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
  assert.equal((await setup.h.sim.faults()).rules.filter((r) => r.cvmId === cvm.id).length, 0, 'the fault fired');
  // The submit that lost its answer was retried as an activity attempt, which found the operation.
  const events = (await handle.fetchHistory()).events ?? [];
  const submits = new Map<string, boolean>();
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) submits.set(String(e.eventId), s.activityType?.name === 'submitEnvUpdate');
  }
  const submitAttempts = events
    .filter((e) => e.activityTaskStartedEventAttributes && submits.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
    .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
  assert.ok(Math.max(...submitAttempts) >= 2, `a submit was retried: ${submitAttempts}`);
  return { result, status: await getEnvUpdateStatus(setup.h.client, cvm.id) };
}

test('the phase-1 202 is lost: the retry follows the accepted change, nothing is applied twice', async () => {
  const { status } = await lostAccept('phala', { ONLY: randomBytes(8).toString('hex') }, []);
  assert.equal(status.attempts.phase1, 1, `one phase 1: ${JSON.stringify(status.attempts)}`);
});

test('the phase-2 202 is lost: no 466, no second phase 1, applied once', async () => {
  const env = { A: 'a', [newKey()]: randomBytes(8).toString('hex') };
  const { result, status } = await lostAccept('onchain', env, ['A']);
  assert.ok(result.transactionHash, 'went through phase 2');
  assert.equal(status.attempts.phase1, 1, `phase 1 ran once (no 466 sent it back): ${JSON.stringify(status.attempts)}`);
  assert.equal(status.attempts.phase2, 1, JSON.stringify(status.attempts));
});
