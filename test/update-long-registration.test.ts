// Registration waits that last days, on the time-skipping test server with stub activities:
// an owner who signs four days later, a chain that stalls under a registration for three days,
// a signer manager that answers only after ten, and its answers landing out of order. Every
// run's history stays under the budget, the change continues as new without its plaintext env,
// and phase 2 sends the ciphertext phase 1 sent with the registration that finally came.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import protos from '@temporalio/proto';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import { sealEnvelope } from '../src/activities/sealed-env-reader.ts';
import { WORKFLOWS_PATH } from '../src/workflow-bundling.ts';
import { HISTORY_BUDGET } from '../src/workflows/bounded-wait.ts';
import { askAgainAfter } from '../src/workflows/managed-registration.ts';
import { registrationNoticeSignal, type RegistrationRequest } from '../src/workflows/signer-manager/definitions.ts';
import { CvmIdAttribute, WORKFLOW_TYPE, type UpdateEnvInput, type UpdateEnvResult } from '../src/workflows/definitions.ts';
import type {
  ApplyObservation,
  ChainPreflight,
  ConfirmationCheck,
  CvmTarget,
  MinedTx,
  SubmitEnvInput,
  SubmitEnvOutcome,
} from '../src/activities/types.ts';
import type { OwnerWatch } from '../src/activities/owner-activities.ts';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const SECRET = 'plaintext-secret-value';
const APP = '0x00000000000000000000000000000000000000a1';
const HASH = '0x' + 'c0'.repeat(32);
const CIPHERTEXT = 'ab'.repeat(40);
const OWNER_TX: MinedTx = { hash: '0x' + '0e'.repeat(32), blockNumber: 120, blockHash: '0x' + 'b1'.repeat(32) };
const OURS_TX: MinedTx = { hash: '0x' + '05'.repeat(32), blockNumber: 130, blockHash: '0x' + 'b2'.repeat(32) };

let env: TestWorkflowEnvironment;
before(async () => {
  env = await createTimeSkippingEnv();
});
after(async () => {
  await env?.teardown();
});

/** The server's clock, which the test server moves forward while the workflow sleeps. */
const serverNow = () => Context.current().info.currentAttemptScheduledTimestampMs;

type Scenario = {
  preflight: Partial<ChainPreflight>;
  watchOwner?: (sinceFirstMs: number) => OwnerWatch;
  checkConfirmations?: (sinceFirstMs: number) => ConfirmationCheck;
  requestRegistration?: (request: RegistrationRequest, sinceFirstMs: number) => Promise<void>;
};

/** An on-chain-KMS change whose phase 1 asks for a registration; `s` decides how the chain and signer behave. */
function stubActivities(s: Scenario) {
  const calls: Record<string, number> = {};
  const submits: SubmitEnvInput[] = [];
  const firstAt: Record<string, number> = {};
  const count = (name: string, now = serverNow()) => {
    calls[name] = (calls[name] ?? 0) + 1;
    firstAt[name] ??= now;
    return now - firstAt[name]!;
  };
  const target: CvmTarget = { cvmId: 'cvm_long', appId: APP, kms: 'onchain', kmsType: 'onchain', chainId: 31337 };
  const activities = {
    async validateInput(a: { env: Record<string, string> }) {
      count('validateInput');
      return { env: Object.entries(a.env).map(([key, value]) => ({ key, value })), envKeys: Object.keys(a.env) };
    },
    async findEarlierRequest() {
      return { found: false };
    },
    async resolveCvm() {
      return target;
    },
    async getEncryptionKey() {
      return { publicKey: '00'.repeat(32), source: 'kms-signed' };
    },
    async sealEnv() {
      count('encryptEnv');
      return sealEnvelope(Buffer.from(CIPHERTEXT, 'hex'));
    },
    async submitEnvUpdate(a: SubmitEnvInput): Promise<SubmitEnvOutcome> {
      count('submitEnvUpdate');
      submits.push(a);
      return a.transactionHash
        ? { kind: 'in_progress', correlationId: 'corr-long', allowedEnvsChanged: false }
        : { kind: 'precondition_required', composeHash: HASH, appId: APP, chainId: 31337 };
    },
    async checkComposeHash() {
      return { policy: 'strict', expected: HASH, computed: HASH, matches: true, detail: 'matches' };
    },
    async chainPreflight(): Promise<ChainPreflight> {
      count('chainPreflight');
      return {
        chainId: 31337,
        rpcChainId: 31337,
        signer: '0x00000000000000000000000000000000000000f1',
        owner: '0x00000000000000000000000000000000000000f2',
        signerIsOwner: false,
        alreadyAllowed: false,
        blockNumber: 100,
        confirmations: 2,
        stallMs: 60_000,
        ...s.preflight,
      };
    },
    async ownerRegistrationProposal() {
      count('ownerRegistrationProposal');
      return { to: APP, data: '0x', description: `addComposeHash(${HASH})` };
    },
    async watchOwnerRegistration(): Promise<OwnerWatch> {
      return s.watchOwner!(count('watchOwnerRegistration'));
    },
    async checkConfirmations(): Promise<ConfirmationCheck> {
      const since = count('checkConfirmations');
      return s.checkConfirmations ? s.checkConfirmations(since) : { state: 'confirmed', confirmations: 2 };
    },
    async requestRegistration(a: { request: RegistrationRequest }) {
      // A local activity (since 'local-reads'): its info carries the worker's clock, not the server's.
      const since = count('requestRegistration', await env.currentTimeMs());
      await s.requestRegistration!(a.request, since);
      return { managerWorkflowId: 'signer-31337-stub' };
    },
    async observeApplied(): Promise<ApplyObservation> {
      count('observeApplied');
      return { state: 'applied' };
    },
  };
  return { activities, calls, submits };
}

interface Run {
  runId: string;
  events: protos.temporal.api.history.v1.IHistoryEvent[];
  /** The start input as JSON text (the test server has no codec: what a codec would encrypt). */
  input: string;
}

/** Every run of the chain, first to last. */
async function runsOf(workflowId: string, firstRunId: string): Promise<Run[]> {
  const runs: Run[] = [];
  for (let runId: string | undefined = firstRunId; runId;) {
    const history: protos.temporal.api.history.v1.IHistory = await env.client.workflow
      .getHandle(workflowId, runId, { followRuns: false })
      .fetchHistory();
    const events = history.events ?? [];
    const payloads = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    runs.push({ runId, events, input: payloads.map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8')).join('') });
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

async function runChange(s: Scenario, onStarted?: (workflowId: string) => void) {
  const taskQueue = `long-reg-${randomUUID()}`;
  const stub = stubActivities(s);
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: stub.activities,
  });
  const workflowId = `cvm-env-long-${randomUUID()}`;
  onStarted?.(workflowId);
  const input: UpdateEnvInput = { cvmId: 'cvm_long', env: { TOKEN: SECRET } };
  const { result, firstRunId } = await worker.runUntil(async () => {
    const handle = await env.client.workflow.start(WORKFLOW_TYPE, {
      workflowId,
      taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: CvmIdAttribute, value: input.cvmId }],
    });
    return { result: (await handle.result()) as UpdateEnvResult, firstRunId: handle.firstExecutionRunId };
  });
  const runs = await runsOf(workflowId, firstRunId);
  return { ...stub, result, runs, workflowId, firstRunId };
}

/** What every long registration wait must keep: bounded runs, no plaintext carried, one encryption, the same ciphertext. */
function assertBoundedAndCarried(r: Awaited<ReturnType<typeof runChange>>, at: string) {
  assert.ok(r.runs.length >= 2, `continued as new (${r.runs.length} runs)`);
  for (const run of r.runs) assert.ok(run.events.length <= HISTORY_BUDGET + 20, `run ${run.runId}: ${run.events.length} events`);
  for (const run of r.runs.slice(1)) {
    assert.ok(!run.input.includes(SECRET), `run ${run.runId} was started without the plaintext env`);
    const resume = (JSON.parse(run.input) as UpdateEnvInput).resume;
    assert.equal(resume?.at, at, `run ${run.runId} resumes the ${at} wait`);
  }
  // Checked by the first run's workflow code (input schema), not by an activity; later runs carry no env.
  assert.equal(r.calls.validateInput ?? 0, 0, 'no validateInput activity');
  assert.equal(r.calls.encryptEnv, 1, 'the env was encrypted once, by the first run');
  assert.equal(r.calls.submitEnvUpdate, 2, 'one phase 1, one phase 2');
  // Both phases (the second in a later run) point at the first run's one copy of the ciphertext.
  const sha256 = createHash('sha256').update(Buffer.from(CIPHERTEXT, 'hex')).digest('hex');
  assert.deepEqual(
    r.submits.map((s) => [s.encryptedEnv, s.sealedEnv?.runId, s.sealedEnv?.sha256]),
    [
      [undefined, r.firstRunId, sha256],
      [undefined, r.firstRunId, sha256],
    ],
    'phase 2 of a later run sends the ciphertext phase 1 sent',
  );
  for (const run of r.runs) assert.ok(!run.input.includes(CIPHERTEXT), `run ${run.runId} carries no ciphertext in its input`);
  assert.deepEqual(r.submits[1]!.envKeys, ['TOKEN']);
  assert.equal(r.result.applied, true);
  assert.equal(r.result.composeHash, HASH);
}

test(
  'an owner who registers after 4 days: bounded runs, continue-as-new, then phase 2 with the owner transaction',
  { timeout: 300_000 },
  async () => {
    const REGISTERED_AFTER_MS = 4 * DAY_MS;
    const r = await runChange({
      preflight: { signerIsOwner: false },
      watchOwner: (since) => (since >= REGISTERED_AFTER_MS ? { state: 'registered', tx: OWNER_TX } : { state: 'waiting' }),
    });
    assertBoundedAndCarried(r, 'owner');
    assert.equal(r.result.transactionHash, OWNER_TX.hash);
    assert.equal(r.result.blockNumber, OWNER_TX.blockNumber);
    assert.equal(r.submits[1]!.transactionHash, OWNER_TX.hash);
    assert.equal(r.submits[1]!.composeHash, HASH);
    assert.equal(r.calls.ownerRegistrationProposal, r.runs.length, 'each run shows the owner the proposal');
    assert.equal(r.calls.chainPreflight, 1, 'continued runs carry the preflight');
    assert.ok((r.result.timings.totalMs ?? 0) >= REGISTERED_AFTER_MS, `timings span every run (${r.result.timings.totalMs} ms)`);
    const operatorMs = r.result.timings.operatorMs;
    assert.ok(operatorMs >= REGISTERED_AFTER_MS - DAY_MS / 2, `the owner wait is booked as operator time across runs (${operatorMs} ms)`);
    // The watch slows down to its cap: 4 days are far fewer slices than back-to-back polling.
    assert.ok((r.calls.watchOwnerRegistration ?? 0) < 1_300, `${r.calls.watchOwnerRegistration} watch slices in 4 days`);
  },
);

test('a chain that stalls for 3 days under the registration: the confirmations wait continues as new', { timeout: 300_000 }, async () => {
  const STALLED_MS = 3 * DAY_MS;
  const existing: MinedTx = { hash: '0x' + '0a'.repeat(32), blockNumber: 99, blockHash: '0x' + 'b0'.repeat(32) };
  const r = await runChange({
    preflight: { existing, alreadyAllowed: true, signerIsOwner: true },
    checkConfirmations: (since) =>
      since >= STALLED_MS ? { state: 'confirmed', confirmations: 2 } : { state: 'pending', confirmations: 1 },
  });
  assertBoundedAndCarried(r, 'confirming');
  for (const run of r.runs.slice(1)) {
    const resume = (JSON.parse(run.input) as UpdateEnvInput).resume as { registration?: MinedTx };
    assert.deepEqual(resume.registration, existing, 'the continued run waits for the same registration');
  }
  assert.equal(r.result.transactionHash, existing.hash);
  assert.equal(r.submits[1]!.transactionHash, existing.hash);
  assert.ok((r.calls.checkConfirmations ?? 0) < 1_000, `${r.calls.checkConfirmations} confirmation slices in 3 days`);
});

test("the signer manager's re-ask backs off to 30 min and continues as new with the same asker id", { timeout: 300_000 }, async () => {
  // An ask is a local activity since 'local-reads' (a marker, not an activity task): some 6 events
  // with its timer, so the history budget is spent after about a week of asks at the 30 min cap.
  const DAYS = 10;
  const ANSWERED_AFTER_MS = DAYS * DAY_MS;
  const asks: { at: number; requestId: string }[] = [];
  let workflowId = '';
  let answered = false;
  const r = await runChange(
    {
      preflight: { signerIsOwner: true },
      requestRegistration: async (request, since) => {
        asks.push({ at: since, requestId: request.requestId });
        if (since < ANSWERED_AFTER_MS || answered) return;
        answered = true;
        // The manager's answer: the registration at the asked depth.
        await env.client.workflow
          .getHandle(workflowId)
          .signal(registrationNoticeSignal, { appId: APP, composeHash: HASH, state: 'confirmed', tx: OURS_TX, confirmations: 2 });
      },
    },
    (id) => (workflowId = id),
  );
  assertBoundedAndCarried(r, 'managed');
  assert.equal(r.result.transactionHash, OURS_TX.hash);
  assert.equal(r.submits[1]!.transactionHash, OURS_TX.hash);
  assert.deepEqual([...new Set(asks.map((a) => a.requestId))], [`${workflowId}/${r.firstRunId}`], 'every run asks as the same asker');

  const gaps = asks.slice(1).map((a, i) => a.at - asks[i]!.at);
  const near = (ms: number, want: number) => Math.abs(ms - want) < 10_000;
  assert.ok(
    near(gaps[0]!, 2 * MINUTE_MS) && near(gaps[1]!, 4 * MINUTE_MS) && near(gaps[2]!, 8 * MINUTE_MS),
    `doubling: ${gaps.slice(0, 4)}`,
  );
  assert.ok(near(gaps[3]!, 16 * MINUTE_MS) && near(gaps[4]!, 30 * MINUTE_MS), `capped at 30 min: ${gaps.slice(3, 6)}`);
  // Across the continue-as-new boundaries too: no gap shrinks back to 2 minutes.
  for (const [i, g] of gaps.entries()) {
    if (i >= 4) assert.ok(near(g, 30 * MINUTE_MS), `gap ${i} is ${g} ms`);
  }
  assert.ok(asks.length < DAYS * 50, `${asks.length} asks in ${DAYS} days (every 2 min would be ${DAYS * 720})`);
  assert.equal(askAgainAfter(1), 2 * MINUTE_MS);
  assert.equal(askAgainAfter(40), 30 * MINUTE_MS);
});

test('a `mined` answer landing after `confirmed` does not hold the change until it asks again', { timeout: 120_000 }, async () => {
  // The manager sends its answers without waiting for each to land, and the server does not keep
  // their order: a late intermediate answer must not replace the final one.
  let workflowId = '';
  const r = await runChange(
    {
      preflight: { signerIsOwner: true },
      requestRegistration: async () => {
        const handle = env.client.workflow.getHandle(workflowId);
        await handle.signal(registrationNoticeSignal, { appId: APP, composeHash: HASH, state: 'confirmed', tx: OURS_TX, confirmations: 2 });
        await handle.signal(registrationNoticeSignal, { appId: APP, composeHash: HASH, state: 'mined', tx: OURS_TX });
      },
    },
    (id) => (workflowId = id),
  );
  assert.equal(r.calls.requestRegistration, 1, 'asked once: the confirmed answer was kept');
  assert.equal(r.runs.length, 1);
  assert.equal(r.result.transactionHash, OURS_TX.hash);
  assert.equal(r.submits[1]!.transactionHash, OURS_TX.hash);
});
