// Fleet rollouts end to end on the real stack (Temporal dev server, anvil at 1 s blocks, the
// simulator over HTTP): one registration per app, failures recorded with their reason, a stop
// after maxFailures, pause/resume, abort mid-way, canary approval, a worker SIGKILLed in the
// middle, continue-as-new, and the same rollout id started twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  abortRollout,
  approveRollout,
  awaitEnvUpdate,
  awaitRollout,
  getEnvUpdateStatus,
  getRolloutStatus,
  pauseRollout,
  resumeRollout,
  retryFailedRollout,
  RolloutAlreadyExistsError,
  startEnvUpdate,
  startRollout,
} from '../src/client.ts';
import type { RolloutInput, RolloutStatus } from '../src/workflows/rollout/definitions.ts';
import { main as cli } from '../src/cli.ts';
import { registrationsOf } from './support/registrations.ts';
import { createHarness, useUpdateHarness, type Harness } from './support/update-harness.ts';
import { waitFor } from './support/wait.ts';

const setup = useUpdateHarness();

const newKey = () => `K_${randomBytes(4).toString('hex').toUpperCase()}`;
const secret = () => randomBytes(8).toString('hex');

const start = (h: Harness, input: RolloutInput) => startRollout(h.client, input, { taskQueue: h.taskQueue });
const statusOf = (h: Harness, id: string) => getRolloutStatus(h.client, id);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Phala-KMS CVMs: no chain on their path, so flow-control tests stay fast. */
async function phalaCvms(h: Harness, n: number, applyDelayMs = 200): Promise<string[]> {
  return (await h.sim.createCvms({ kms: 'phala', allowedEnvs: ['A'], applyDelayMs }, n)).map((c) => c.id);
}

async function childrenOf(h: Harness, rolloutId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of h.client.workflow.list({ query: `RolloutId = '${rolloutId}' AND WorkflowType = 'updateCvmEnvWorkflow'` }))
    ids.push(wf.workflowId);
  return ids.sort();
}

test('1 app × 20 CVMs (targets.appId): one registration, 20 applied; 5 apps × 4: five; wall times against one update', async () => {
  const { h, stack } = setup;
  const timings: Record<string, number> = {};

  // One update alone, as the yardstick.
  const single = await h.newCvm({ kms: 'onchain', appId: await h.newApp(), allowedEnvs: ['BASE'] });
  let t0 = Date.now();
  const one = await awaitEnvUpdate(
    (await startEnvUpdate(h.client, { cvmId: single.id, env: { BASE: secret(), [newKey()]: secret() } }, { taskQueue: h.taskQueue }))
      .handle,
  );
  timings.oneUpdateMs = Date.now() - t0;
  assert.ok(one.transactionHash);

  // 1 × 20, listed through the API by app id.
  const app = await h.newApp();
  const cvms = await h.sim.createCvms({ kms: 'onchain', appId: app, allowedEnvs: ['BASE'] }, 20);
  const env = { BASE: secret(), [newKey()]: secret() };
  t0 = Date.now();
  const { handle, rolloutId } = await start(h, { targets: { appId: app }, env, concurrency: 20 });
  const result = await awaitRollout(handle);
  timings.rollout1x20Ms = Date.now() - t0;
  assert.equal(result.total, 20);
  assert.equal(result.succeeded, 20, JSON.stringify(result.failed));
  assert.deepEqual(result.failed, []);
  const hash = (await h.sim.cvm(cvms[0]!.id)).composeHash;
  assert.equal((await registrationsOf(stack.info.rpcUrl, app, hash)).length, 1, 'one registration for the app');
  for (const c of cvms) assert.deepEqual((await h.sim.appliedEnv(c.id)).env, env);
  // Where the children's time went (for the wall-time figures printed below).
  const phaseMs: Record<string, number> = {};
  for (const c of cvms) {
    const st = await getEnvUpdateStatus(h.client, c.id);
    for (const ph of st.timings.phases) phaseMs[ph.phase] = (phaseMs[ph.phase] ?? 0) + ph.ms / cvms.length;
  }
  process.stderr.write(
    `# 1 × 20: mean ms per child phase ${JSON.stringify(Object.fromEntries(Object.entries(phaseMs).map(([k, v]) => [k, Math.round(v)])))}\n`,
  );
  // Each child carries the rollout id: the UI filters a rollout's children with it.
  const children = await waitFor('the children in visibility', async () => {
    const ids = await childrenOf(h, rolloutId);
    return ids.length === 20 ? ids : undefined;
  });
  assert.deepEqual(children, cvms.map((c) => `cvm-env-${c.id}`).sort());

  // 5 × 4, by CVM ids.
  const apps: string[] = [];
  for (let i = 0; i < 5; i++) apps.push(await h.newApp()); // one deployer key: one at a time
  const byApp = await Promise.all(apps.map((a) => h.sim.createCvms({ kms: 'onchain', appId: a, allowedEnvs: ['BASE'] }, 4)));
  const env2 = { BASE: secret(), [newKey()]: secret() };
  t0 = Date.now();
  const r2 = await awaitRollout(
    (await start(h, { targets: { cvmIds: byApp.flat().map((c) => c.id) }, env: env2, concurrency: 20 })).handle,
  );
  timings.rollout5x4Ms = Date.now() - t0;
  assert.equal(r2.succeeded, 20, JSON.stringify(r2.failed));
  for (const [i, a] of apps.entries()) {
    const hsh = (await h.sim.cvm(byApp[i]![0]!.id)).composeHash;
    assert.equal((await registrationsOf(stack.info.rpcUrl, a, hsh)).length, 1, `one registration for app ${a}`);
  }
  process.stderr.write(
    `# rollout wall times: ${JSON.stringify({ ...timings, ratio1x20: +(timings.rollout1x20Ms! / timings.oneUpdateMs!).toFixed(2), ratio5x4: +(timings.rollout5x4Ms! / timings.oneUpdateMs!).toFixed(2) })}\n`,
  );
});

test('a CVM that fails for good is reported with its reason and the others succeed; at maxFailures no child starts; retryFailed', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 4);
  await h.sim.addFaults({ rules: [{ route: 'GET /cvms/{id}', cvmId: ids[1]!, error: { status: 403 } }] });
  const env = { A: secret() };
  const r = await awaitRollout((await start(h, { targets: { cvmIds: ids }, env, concurrency: 2 })).handle);
  assert.equal(r.succeeded, 3);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.cvmId, ids[1]);
  assert.match(r.failed[0]!.reason, /403/);
  for (const id of [ids[0]!, ids[2]!, ids[3]!]) assert.deepEqual((await h.sim.appliedEnv(id)).env, env);
  assert.ok(!r.failed[0]!.reason.includes(env.A), 'no secret in the reason');

  // maxFailures 1, one at a time, the failing CVM first: the rollout halts with the rest pending.
  const more = await phalaCvms(h, 3);
  const { handle, rolloutId } = await start(h, { targets: { cvmIds: [ids[1]!, ...more] }, env, concurrency: 1, maxFailures: 1 });
  const halted = await waitFor('the halt', async () => {
    const s = await statusOf(h, rolloutId);
    return s.state === 'halted' ? s : undefined;
  });
  assert.deepEqual(halted.counts, { pending: 3, running: 0, succeeded: 0, failed: 1, aborted: 0 });
  assert.match(halted.waitingFor ?? '', /maxFailures/);
  await sleep(1500);
  assert.deepEqual((await statusOf(h, rolloutId)).counts, halted.counts, 'nothing started while halted');
  // The cause is fixed and the operator retries the failed CVM: it runs first, then the rest.
  await h.sim.removeFaults({ cvmId: ids[1]! });
  const retried = await retryFailedRollout(h.client, rolloutId);
  assert.equal(retried.counts.failed, 0);
  assert.equal(retried.counts.pending, 4);
  const done = await awaitRollout(handle);
  assert.equal(done.succeeded, 4, JSON.stringify(done.failed));
  assert.deepEqual(done.failed, []);
  assert.deepEqual((await h.sim.appliedEnv(ids[1]!)).env, env);
});

test('pause: no child starts while paused; resume finishes the rollout', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 5, 400);
  const { handle, rolloutId } = await start(h, { targets: { cvmIds: ids }, env: { A: secret() }, concurrency: 1 });
  const paused = await pauseRollout(h.client, rolloutId);
  assert.equal(paused.state, 'paused');
  await assert.rejects(pauseRollout(h.client, rolloutId), /already paused/, 'the validator refuses a second pause');
  const settled = await waitFor('the running child to end', async () => {
    const s = await statusOf(h, rolloutId);
    return s.counts.running === 0 ? s : undefined;
  });
  await sleep(1500);
  const later = await statusOf(h, rolloutId);
  assert.equal(later.state, 'paused');
  assert.deepEqual(later.counts, settled.counts, 'nothing started while paused');
  assert.ok(later.counts.pending >= 3, JSON.stringify(later.counts));
  await resumeRollout(h.client, rolloutId);
  const r = await awaitRollout(handle);
  assert.equal(r.succeeded, 5);
  await assert.rejects(resumeRollout(h.client, rolloutId), /ended|completed|not found|closed/i);
});

test('abort mid-way: running children are aborted and have ended, the rest never start', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 6, 5000);
  const { handle, rolloutId } = await start(h, { targets: { cvmIds: ids }, env: { A: secret() }, concurrency: 2 });
  await waitFor('two children running', async () => (await statusOf(h, rolloutId)).counts.running === 2);
  const after = await abortRollout(h.client, rolloutId, 'wrong value');
  // The update answers once every child has ended.
  assert.equal(after.counts.running, 0);
  const r = await awaitRollout(handle);
  assert.equal(r.abortReason, 'wrong value');
  assert.equal(r.succeeded + r.failed.length + r.aborted.length, 6, JSON.stringify(r));
  assert.ok(r.aborted.length >= 4, JSON.stringify(r));
  for (const id of ids) {
    const d = await h.client.workflow
      .getHandle(`cvm-env-${id}`)
      .describe()
      .catch(() => undefined);
    if (d) assert.notEqual(d.status.name, 'RUNNING', `child of ${id} still runs`);
    else assert.ok(r.aborted.includes(id), `${id} neither ran nor is listed as aborted`);
  }
});

test('canary: the rest waits for approval; autoApprove goes on by itself', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 4);
  const { handle, rolloutId } = await start(h, { targets: { cvmIds: ids }, env: { A: secret() }, canary: 1 });
  const waiting = await waitFor('the approval wait', async () => {
    const s = await statusOf(h, rolloutId);
    return s.state === 'awaiting_approval' ? s : undefined;
  });
  assert.deepEqual(waiting.counts, { pending: 3, running: 0, succeeded: 1, failed: 0, aborted: 0 });
  await sleep(1000);
  assert.equal((await statusOf(h, rolloutId)).counts.pending, 3, 'nothing started before approval');
  await approveRollout(h.client, rolloutId);
  await assert.rejects(approveRollout(h.client, rolloutId), /already approved|ended/);
  assert.equal((await awaitRollout(handle)).succeeded, 4);

  const auto = await awaitRollout(
    (await start(h, { targets: { cvmIds: await phalaCvms(h, 3) }, env: { A: secret() }, canary: { count: 1, autoApprove: true } })).handle,
  );
  assert.equal(auto.succeeded, 3);
});

test('the same rollout id started twice runs once; a bad input names its field', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 3);
  const rolloutId = `same-${randomUUID()}`;
  const input: RolloutInput = { rolloutId, targets: { cvmIds: ids }, env: { A: secret() } };
  const [a, b] = await Promise.all([start(h, input), start(h, input)]);
  assert.equal(a.workflowId, b.workflowId);
  assert.equal([a.attached, b.attached].filter(Boolean).length, 1);
  await awaitRollout(a.handle);
  const again = await start(h, input);
  assert.equal(again.attached, true, 'a finished rollout is not run again');
  await assert.rejects(start(h, { ...input, requestId: 'other' }), RolloutAlreadyExistsError);
  const children = await waitFor('the children in visibility', async () => {
    const c = await childrenOf(h, rolloutId);
    return c.length === 3 ? c : undefined;
  });
  assert.equal(children.length, 3);
  let runs = 0;
  for await (const _ of h.client.workflow.list({ query: `WorkflowId = 'rollout-${rolloutId}'` })) runs++;
  assert.equal(runs, 1);

  await assert.rejects(start(h, { targets: { cvmIds: [] }, env: { A: 'x' } }), /targets\.cvmIds/);
  await assert.rejects(start(h, { targets: { cvmIds: ['x'] }, env: { A: 'x' }, concurrency: 0 }), /concurrency/);
  await assert.rejects(start(h, { targets: { appId: 'nope' }, env: { A: 'x' } }), /targets\.appId/);
});

test('continue-as-new carries the progress: a rollout over many runs ends with every CVM', async () => {
  const { h } = setup;
  const ids = await phalaCvms(h, 6);
  const { handle, rolloutId } = await start(h, { targets: { cvmIds: ids }, env: { A: secret() }, concurrency: 2, maxEventsPerRun: 20 });
  const r = await awaitRollout(handle);
  assert.equal(r.succeeded, 6);
  const s: RolloutStatus = await statusOf(h, rolloutId);
  assert.ok(s.runs >= 2, `ran in ${s.runs} run(s)`);
  assert.equal(s.state, 'completed');
  assert.deepEqual(s.counts, { pending: 0, running: 0, succeeded: 6, failed: 0, aborted: 0 });
});

test('a worker SIGKILLed in the middle of a rollout: a new worker finishes it, one registration', async () => {
  const { stack } = setup;
  const h = await createHarness(stack);
  try {
    const app = await h.newApp();
    const cvms = await h.sim.createCvms({ kms: 'onchain', appId: app, allowedEnvs: ['BASE'] }, 6);
    const env = { BASE: secret(), [newKey()]: secret() };
    const doomed = h.spawnWorker({ WORKER_CRASH_BEFORE_ACTIVITY: 'observeApplied', LOG_LEVEL: 'ERROR' });
    const { handle } = await start(h, { targets: { appId: app }, env, concurrency: 3 });
    assert.equal(await doomed.exited, null, 'the worker should have been killed by a signal');
    await h.startWorker({ LOG_LEVEL: 'ERROR' });
    const r = await awaitRollout(handle);
    assert.equal(r.succeeded, 6, JSON.stringify(r.failed));
    const hash = (await h.sim.cvm(cvms[0]!.id)).composeHash;
    assert.equal((await registrationsOf(stack.info.rpcUrl, app, hash)).length, 1);
    for (const c of cvms) assert.deepEqual((await h.sim.appliedEnv(c.id)).env, env);
  } finally {
    await h.close();
  }
});

async function runCli(h: Harness, args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await cli(['rollout', ...args], {
    stdin: async () => stdin,
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: h.env,
    cwd: process.cwd(),
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}

test('CLI: usage errors exit 2 naming the option; rollout start from stdin shows a bar and never the values', async () => {
  const { h } = setup;
  for (const [args, pattern] of [
    [['start', '--env-file', '-'], /--app <id> or --cvms/],
    [['start', '--app', 'nope', '--env-file', '-'], /--app must be an app id/],
    [['start', '--cvms', 'a,b', '--env-file', '-', '--concurrency', '0'], /--concurrency must be a positive integer/],
    [['start', '--cvms', 'a,a', '--env-file', '-'], /lists a CVM twice/],
    [['start', '--cvms', 'a', '--env-file', '-', '--auto-approve'], /--auto-approve needs --canary/],
    [['start', '--cvms', 'a'], /env is missing/],
    [['frobnicate', 'x'], /subcommands are/],
    [['pause', 'x', '--concurrency', '2'], /belongs to rollout start/],
  ] as const) {
    const r = await runCli(h, [...args], 'A=1\n');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stdout, '');
  }

  const ids = await phalaCvms(h, 3);
  const value = secret();
  const rolloutId = `cli-${randomUUID()}`;
  const r = await runCli(
    h,
    ['start', '--cvms', ids.join(','), '--env-file', '-', '--concurrency', '2', '--rollout-id', rolloutId, '--json'],
    `A=${value}\n`,
  );
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { succeeded: number; total: number };
  assert.deepEqual([result.total, result.succeeded], [3, 3]);
  assert.match(r.stderr, /\[#+\] 3\/3 {2}succeeded 3/);
  assert.ok(!r.stderr.includes(value) && !r.stdout.includes(value), 'the value never printed');
  for (const id of ids) assert.equal((await h.sim.appliedEnv(id)).env.A, value);

  const st = await runCli(h, ['status', rolloutId, '--json']);
  assert.equal(st.code, 0, st.stderr);
  assert.equal((JSON.parse(st.stdout) as { status: RolloutStatus }).status.state, 'completed');
  const refused = await runCli(h, ['approve', rolloutId]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /ended|completed|closed/i);
});
