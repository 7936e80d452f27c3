// The bad-input corpus (test/bad-input/corpus.ts), every case run against the real stack: the CLI
// as a child process, startEnvUpdate, raw Temporal starts through the codec, operator signals and
// Updates sent to a change that waits for an operator, and hostile API answers injected by the
// simulator. For each case: the expected error (type and message) within the case's bound, no
// `SECRET-` marker (nor a stack secret) in the error, the CLI's output, the worker's log lines,
// the workflow's search attributes, memo, summary or history, and the waiting change still
// answers its status query.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { createWalletClient, createPublicClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { getEnvUpdateStatus, startEnvUpdate, type UpdateEnvInput, type UpdateStatus } from '../src/client.ts';
import { WORKFLOW_TYPE, workflowIdForCvm } from '../src/workflows/definitions.ts';
import {
  CORPUS,
  MARKER_PREFIX,
  type BadInputCase,
  type CliCase,
  type ClientCase,
  type HostileCase,
  type OperatorCase,
  type RawStartCase,
} from './bad-input/corpus.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { createHarness, type Harness } from './support/update-harness.ts';
import { waitForStatus } from './support/wait.ts';
import { activityCalls } from './support/activity-calls.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

let stack: TestStack;
let h: Harness;
let worker: ChildProcess;
let workerExited: Promise<number | null>;
let workerLog = '';
let tmp: string;
/** The change that waits for an operator all along (its app is not the signer's). */
let waiting: { cvmId: string; handle: WorkflowHandle };
let placeholders: Record<string, string>;
/** Stack secrets that must not show anywhere either. */
let stackSecrets: string[];

before(async () => {
  // The hostile-API cases include faults not tied to a CVM: a simulator of this file's own.
  stack = await useStack({ private: true });
  h = await createHarness(stack);
  tmp = mkdtempSync(join(tmpdir(), 'dce-corpus-'));
  stackSecrets = ['PAYLOAD_ENCRYPTION_KEYS', 'PHALA_API_KEY', 'SIM_ADMIN_TOKEN']
    .map((k) => stack.env[k])
    .filter((v): v is string => Boolean(v))
    .flatMap((v) => [v, ...v.split(',').map((p) => p.slice(p.indexOf(':') + 1))])
    .concat(h.signer.key, h.signer.key.slice(2));
  // The worker in a process of its own, logging everything it logs in production and more.
  worker = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: REPO,
    env: { ...process.env, ...h.env, LOG_LEVEL: 'DEBUG' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  workerExited = new Promise((resolve) => worker.once('exit', (code) => resolve(code)));
  worker.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
  worker.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/polling task queue/.test(workerLog)) {
    assert.ok(worker.exitCode === null && Date.now() < deadline, `the worker did not start: ${workerLog}`);
    await sleep(100);
  }

  const foreignApp = h.appId(false);
  const cvm = await h.newCvm({ kms: 'onchain', appId: foreignApp, allowedEnvs: ['A'] });
  const env = { A: `${MARKER_PREFIX}waiting-a`, [`CORPUS_${randomBytes(4).toString('hex').toUpperCase()}`]: `${MARKER_PREFIX}waiting-b` };
  const started = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
  waiting = { cvmId: cvm.id, handle: h.client.workflow.getHandle(started.workflowId) };
  await waitForStatus(h.client, cvm.id, (s) => s.phase === 'awaiting_operator', 60_000);

  // A mined transaction that registers nothing, for useTransaction to refuse.
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  const wallet = createWalletClient({ chain, transport, account: privateKeyToAccount(stack.devKeys.other) });
  const unrelatedTx = await wallet.sendTransaction({ to: wallet.account.address, value: 0n });
  await createPublicClient({ chain, transport }).waitForTransactionReceipt({ hash: unrelatedTx, pollingInterval: 100 });

  placeholders = { waitingCvm: cvm.id, ownApp: h.appId(true), foreignApp, unrelatedTx };
});

after(async () => {
  if (worker?.exitCode === null) worker.kill('SIGTERM');
  await workerExited;
  await h?.close();
  await stack?.release();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The case's data with `{name}` placeholders filled in. */
function fill<T>(value: T, extra: Record<string, string> = {}): T {
  const all = { ...placeholders, ...extra };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.replace(/\{(\w+)\}/g, (whole, name: string) => all[name] ?? whole);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [walk(k) as string, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/** Fails when a marker or a stack secret is in `text`. */
function assertNoLeak(where: string, text: string): void {
  assert.ok(!text.includes(MARKER_PREFIX), `a ${MARKER_PREFIX} marker reached ${where}: ${excerpt(text, MARKER_PREFIX)}`);
  for (const s of stackSecrets) assert.ok(!text.includes(s), `a stack secret reached ${where}`);
}

function excerpt(text: string, needle: string): string {
  const i = text.indexOf(needle);
  return text.slice(Math.max(0, i - 120), i + 80);
}

/** Every message and detail in an error's cause chain, and the first failure type met. */
function unwrap(err: unknown): { type: string | undefined; message: string; text: string } {
  let type: string | undefined;
  const messages: string[] = [];
  const parts: string[] = [];
  for (let c: unknown = err; c instanceof Error; c = (c as { cause?: unknown }).cause) {
    parts.push(c.message);
    if (c instanceof ApplicationFailure) {
      type ??= c.type ?? undefined;
      messages.push(c.message);
      parts.push(JSON.stringify(c.details ?? []));
    }
  }
  return { type, message: messages.length > 0 ? messages.join(' / ') : parts.join(' / '), text: parts.join('\n') };
}

/** What a person or another program can read of a workflow without the codec, and with it. */
async function assertWorkflowClean(handle: WorkflowHandle): Promise<void> {
  const d = await handle.describe();
  const seen = JSON.stringify({
    searchAttributes: d.searchAttributes,
    typed: d.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]),
    memo: d.memo,
    summary: await d.staticSummary(),
    details: await d.staticDetails(),
  });
  assertNoLeak(`the search attributes, memo or summary of ${handle.workflowId}`, seen);
  // History as stored: payloads are the codec's ciphertext, so no plaintext may show in it.
  const history = await handle.fetchHistory();
  const raw = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v));
  assertNoLeak(`the stored history of ${handle.workflowId}`, raw);
}

/** After every case: the waiting change still answers, still waits, and no workflow task failed. */
async function assertWaitingAnswers(expectPhase: UpdateStatus['phase'] = 'awaiting_operator'): Promise<UpdateStatus> {
  const status = await Promise.race([
    getEnvUpdateStatus(h.client, waiting.cvmId),
    sleep(5_000).then(() => assert.fail('the waiting change no longer answers its status query')),
  ]);
  assert.equal(status.phase, expectPhase);
  assertNoLeak('the waiting change’s status', JSON.stringify(status));
  const events = (await waiting.handle.fetchHistory()).events ?? [];
  assert.equal(events.filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'a workflow task of the waiting change failed');
  return status;
}

function assertWithin(c: BadInputCase, startedAt: number): void {
  const seconds = (Date.now() - startedAt) / 1000;
  assert.ok(seconds <= c.expect.withinSeconds, `${c.id} took ${seconds.toFixed(1)} s; its bound is ${c.expect.withinSeconds} s`);
}

function assertExpected(c: BadInputCase, type: string | undefined, message: string): void {
  assert.equal(type, c.expect.type, `${c.id}: type; message: ${message}`);
  assert.match(message, c.expect.message, `${c.id}: message`);
}

// ---------------------------------------------------------------------------------------------

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A child process env without Temporal settings; the online cases add the stack's. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TEMPORAL_|PAYLOAD_|PHALA_|SIM_|SIGNER_)/.test(k)) env[k] = v;
  return env;
}

function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, stdin?: string): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--', ...args], {
    cwd: REPO,
    env,
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function runCliCase(c: CliCase): Promise<void> {
  let envFile: string | undefined;
  if (c.envFile !== undefined) {
    envFile = join(tmp, `${c.id}.env`);
    writeFileSync(envFile, c.envFile);
  }
  const args = fill(c.args, envFile ? { envFile } : {});
  const env = c.online ? { ...offlineEnv(), ...h.env } : offlineEnv();
  const t0 = Date.now();
  const r = await runCli(args, env, (c.expect.withinSeconds + 10) * 1000, c.stdin);
  assertWithin(c, t0);
  assertExpected(c, `exit ${r.code}`, r.stderr);
  assertNoLeak('the CLI’s stdout', r.stdout);
  assertNoLeak('the CLI’s stderr', r.stderr);
  if (c.online) {
    const id = args[args.indexOf('--cvm') + 1];
    if (args[0] === 'update' && id && id !== placeholders.waitingCvm) {
      await assertWorkflowClean(h.client.workflow.getHandle(workflowIdForCvm(id)));
    }
  }
}

async function runClientCase(c: ClientCase): Promise<void> {
  const input = fill(c.value) as UpdateEnvInput;
  const t0 = Date.now();
  let started: Awaited<ReturnType<typeof startEnvUpdate>> | undefined;
  let error: unknown;
  try {
    started = await startEnvUpdate(h.client, input, { taskQueue: h.taskQueue });
    await started.handle.result();
  } catch (err) {
    error = err;
  }
  assertWithin(c, t0);
  assert.ok(error instanceof Error, `${c.id}: no error`);
  if (started) {
    assert.ok(error instanceof WorkflowFailedError, String(error));
    const u = unwrap(error);
    assertExpected(c, u.type, u.message);
    assertNoLeak('the failure', u.text);
    await assertWorkflowClean(started.handle);
  } else {
    assertExpected(c, error.name, error.message);
    assertNoLeak('the error', `${error.message}\n${JSON.stringify(error)}`);
  }
}

async function runRawStartCase(c: RawStartCase): Promise<void> {
  const handle = await h.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: `corpus-${c.id}-${randomBytes(4).toString('hex')}`,
    taskQueue: h.taskQueue,
    args: fill(c.args),
  });
  const t0 = Date.now();
  const error = await Promise.race([
    handle.result().then(
      () => assert.fail(`${c.id}: the workflow completed`),
      (err: unknown) => err,
    ),
    sleep((c.expect.withinSeconds + 5) * 1000).then(() => assert.fail(`${c.id}: no failure within the bound (retried?)`)),
  ]);
  assertWithin(c, t0);
  assert.ok(error instanceof WorkflowFailedError, String(error));
  const u = unwrap(error);
  assertExpected(c, u.type, u.message);
  assertNoLeak('the failure', u.text);
  const events = (await handle.fetchHistory()).events ?? [];
  assert.equal(activityCalls(events).length, 0, 'an activity was scheduled');
  assert.equal(events.filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'a workflow task failed first');
  await assertWorkflowClean(handle);
}

async function runOperatorCase(c: OperatorCase): Promise<void> {
  const args = fill(c.args);
  const t0 = Date.now();
  if (c.entry === 'update') {
    let error: unknown;
    try {
      await waiting.handle.executeUpdate(c.name, { args: args as [unknown] });
    } catch (err) {
      error = err;
    }
    assertWithin(c, t0);
    assert.ok(error instanceof WorkflowUpdateFailedError, `${c.id}: the Update was not refused: ${String(error)}`);
    const u = unwrap(error);
    assertExpected(c, u.type, u.message);
    assertNoLeak('the refusal', u.text);
    await assertWaitingAnswers();
    return;
  }
  const before = (await getEnvUpdateStatus(h.client, waiting.cvmId)).lastError;
  await waiting.handle.signal(c.name, ...args);
  if (c.expect.type === 'Aborted') {
    const error = await waiting.handle.result().then(
      () => assert.fail('the change completed'),
      (err: unknown) => err,
    );
    assertWithin(c, t0);
    const u = unwrap(error);
    assertExpected(c, u.type, u.message);
    assertNoLeak('the failure', u.text);
    await assertWaitingAnswers('aborted');
    return;
  }
  if (c.name === 'frobnicate') {
    // No handler: nothing may change, and the next query must still be answered.
    await sleep(1_000);
    const status = await assertWaitingAnswers();
    assertWithin(c, t0);
    assert.equal(status.lastError, before);
    return;
  }
  const status = await waitForStatus(
    h.client,
    waiting.cvmId,
    (s) => s.lastError !== before && c.expect.message.test(s.lastError ?? ''),
    c.expect.withinSeconds * 1000,
  );
  assertWithin(c, t0);
  assertExpected(c, 'ignored', status.lastError ?? '');
  await assertWaitingAnswers();
}

async function runHostileCase(c: HostileCase): Promise<void> {
  const cvm = await h.newCvm(c.cvm.kms === 'phala' ? { kms: 'phala' } : { kms: 'onchain', appId: h.appId(true), allowedEnvs: ['A'] });
  await h.sim.addFaults({ rules: fill(c.rules, { cvm: cvm.id }) });
  const env = { A: `${MARKER_PREFIX}${c.id}-a`, [`K_${randomBytes(4).toString('hex').toUpperCase()}`]: `${MARKER_PREFIX}${c.id}-b` };
  const t0 = Date.now();
  const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
  const outcome = await Promise.race([
    handle.result().then(
      (result) => ({ ok: true as const, result }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    sleep((c.expect.withinSeconds + 5) * 1000).then(() => assert.fail(`${c.id}: no outcome within the bound (retried?)`)),
  ]);
  assertWithin(c, t0);
  if (outcome.ok) {
    assertExpected(c, 'completes', outcome.result.applied ? 'applied' : 'not applied');
    assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
  } else {
    assert.ok(outcome.error instanceof WorkflowFailedError, String(outcome.error));
    const u = unwrap(outcome.error);
    assertExpected(c, u.type, u.message);
    assertNoLeak('the failure', u.text);
    const status = await getEnvUpdateStatus(h.client, cvm.id);
    assert.equal(status.phase, 'failed');
    assert.deepEqual(status.sentTransactions, [], 'no registration was sent');
    assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, {}, 'nothing was applied');
  }
  await assertWorkflowClean(handle);
}

// ---------------------------------------------------------------------------------------------

const of = <E extends BadInputCase['entry']>(...entries: E[]) =>
  CORPUS.filter((c): c is Extract<BadInputCase, { entry: E }> => (entries as string[]).includes(c.entry));

test('the corpus has at least 50 cases, unique ids, over every entry point', () => {
  assert.ok(CORPUS.length >= 50, `${CORPUS.length} cases`);
  assert.equal(new Set(CORPUS.map((c) => c.id)).size, CORPUS.length);
  for (const e of ['cli', 'startEnvUpdate', 'raw start', 'signal', 'update', 'hostile API'])
    assert.ok(
      CORPUS.some((c) => c.entry === e),
      `no ${e} case`,
    );
});

// The groups run side by side (the CLI's are CPU-bound, the capped Retry-After waits idle); the
// operator forms come last, as their final case aborts the waiting change the others query.
describe('entry points that leave the waiting change alone', { concurrency: true }, () => {
  describe('CLI flags and env files', { concurrency: 3 }, () => {
    for (const c of of('cli')) {
      test(`${c.id} ${c.input}`, async () => {
        await runCliCase(c);
        await assertWaitingAnswers();
      });
    }
  });

  describe('startEnvUpdate', { concurrency: 4 }, () => {
    for (const c of of('startEnvUpdate')) {
      test(`${c.id} ${c.input}`, async () => {
        await runClientCase(c);
        await assertWaitingAnswers();
      });
    }
  });

  describe('raw Temporal start through the codec', { concurrency: 4 }, () => {
    for (const c of of('raw start')) {
      test(`${c.id} ${c.input}`, async () => {
        await runRawStartCase(c);
        await assertWaitingAnswers();
      });
    }
  });

  // Cases scoped to their own CVM run side by side; a rule on a route without a CVM runs alone.
  describe('hostile API answers', { concurrency: 4 }, () => {
    for (const c of of('hostile API').filter((x) => !x.global)) {
      test(`${c.id} ${c.input}`, async () => {
        await runHostileCase(c);
        await assertWaitingAnswers();
      });
    }
  });
});

// Alone: its rule is on a route every on-chain CVM reads.
describe('hostile API answers on routes shared by every CVM', { concurrency: 1 }, () => {
  for (const c of of('hostile API').filter((x) => x.global)) {
    test(`${c.id} ${c.input}`, async () => {
      await runHostileCase(c);
      await assertWaitingAnswers();
    });
  }
});

describe('the UI’s update and signal forms, sent to a waiting change', { concurrency: 1 }, () => {
  for (const c of of('update', 'signal')) test(`${c.id} ${c.name}: ${c.input}`, () => runOperatorCase(c));
});

test('the worker logged no marker and no stack secret', async () => {
  await sleep(500);
  assert.ok(workerLog.length > 0, 'the worker logged nothing at all');
  assertNoLeak('the worker’s log', workerLog);
  await assertWorkflowClean(waiting.handle);
});
