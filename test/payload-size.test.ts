// Large envs on the real stack: every env within the guest's limits whose payloads fit
// Temporal's limit completes, with its ciphertext in history once; one that does not fit is
// refused at the start with the numbers; a start by a client without the payload codec is
// refused by the worker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, WorkflowFailedError } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow/index.js';
import proto from '@temporalio/proto';
import { awaitEnvUpdate, PayloadTooLargeError, startEnvUpdate } from '../src/client.ts';
import { MAX_ENV_TOTAL_BYTES } from '../src/phala/env-validation.ts';
import { WORKFLOW_TYPE, workflowIdForCvm, type UpdateEnvInput } from '../src/workflows/definitions.ts';
import { DEFAULT_PAYLOAD_LIMIT_BYTES, envPayloadBudget } from '../src/workflows/payload-budget.ts';
import { SEALED_DIGEST_BYTES } from '../src/workflows/sealed-env.ts';
import { createHarness, type Harness } from './support/update-harness.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { waitFor } from './support/wait.ts';
import { activityCalls } from './support/activity-calls.ts';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

// A harness of its own: the crash test stops the running worker and starts another.
const setup = {} as { stack: TestStack; h: Harness; worker: Awaited<ReturnType<Harness['startWorker']>> };
before(async () => {
  setup.stack = await useStack();
  setup.h = await createHarness(setup.stack);
  setup.worker = await setup.h.startWorker();
});
after(async () => {
  await setup.h?.close();
  await setup.stack?.release();
});
const KiB = 1024;

async function rawEvents(workflowId: string, runId?: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    // The raw service call: nothing here goes through the payload codec.
    const page = await setup.h.client.workflowService.getWorkflowExecutionHistory({
      namespace: setup.stack.info.temporalNamespace,
      execution: { workflowId, runId },
      // Pages of a few events: an env near the limit makes the first events several MiB in all,
      // over gRPC's 4 MiB message limit in one page.
      maximumPageSize: 3,
      nextPageToken,
    });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return events;
}

/** Every codec-encoded payload in the events, found by walking the decoded protobuf objects. */
function payloadsIn(events: HistoryEvent[]): Payload[] {
  const found: Payload[] = [];
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    const o = v as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && 'encoding' in (o.metadata as object)) {
      found.push(o as Payload);
      return;
    }
    // Never encoded by the codec: search attributes, headers, and the SDK's own patch markers
    // (they hold a patch id; the worker reads them without the codec, on replay too).
    for (const [key, child] of Object.entries(o))
      if (!['searchAttributes', 'header', 'markerRecordedEventAttributes'].includes(key)) walk(child);
  };
  events.forEach(walk);
  return found;
}

/** The payloads as the worker sees them: decrypted by the harness's codec. */
async function decodedPayloads(events: HistoryEvent[]): Promise<Payload[]> {
  return setup.h.client.options.loadedDataConverter.payloadCodecs[0]!.decode(payloadsIn(events));
}

function occurrences(haystack: Buffer, needle: Buffer): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + needle.length)) n++;
  return n;
}

function envOf(n: number, value: (i: number) => string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`VAR_${i}`, value(i)]));
}

for (const [name, env] of [
  // The reproduction: 512 KiB in all, JSON-escaped to twice that, hex-encoded to four times.
  ['4 x 128 KiB of quotes', envOf(4, (i) => `${i}${'"'.repeat(128 * KiB - 1)}`)],
  // The guest's maximum: 1 MiB of keys and values.
  [
    'the 1 MiB maximum',
    envOf(8, (i) =>
      randomBytes(MAX_ENV_TOTAL_BYTES)
        .toString('base64')
        .slice(0, MAX_ENV_TOTAL_BYTES / 8 - `VAR_${i}`.length),
    ),
  ],
] as const) {
  test(`${name}: completes on chain, and its history holds the ciphertext once`, { timeout: 180_000 }, async () => {
    const total = Object.entries(env).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
    assert.ok(total <= MAX_ENV_TOTAL_BYTES);
    const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['X'] });
    const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
    const result = await awaitEnvUpdate(handle);
    assert.equal(result.applied, true);
    assert.ok(result.transactionHash, 'phase 2 ran: the change was registered on chain');
    assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);

    const events = await rawEvents(handle.workflowId);
    const sealed = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sealEnv');
    assert.ok(sealed, 'the env was sealed');
    const sealedResult = events.find(
      (e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === sealed.eventId?.toString(),
    );
    const [sealedPayload] = await setup.h.client.options.loadedDataConverter.payloadCodecs[0]!.decode(
      sealedResult!.activityTaskCompletedEventAttributes!.result!.payloads!,
    );
    const ciphertext = Buffer.from(sealedPayload!.data!).subarray(SEALED_DIGEST_BYTES);
    assert.ok(ciphertext.length > total, 'the ciphertext covers the whole env');

    // Raw, the history holds only codec ciphertext; decrypted, the env ciphertext is in one payload.
    const raw = Buffer.from(proto.temporal.api.history.v1.History.encode({ events }).finish());
    assert.equal(occurrences(raw, ciphertext.subarray(0, 64)), 0);
    const decoded = await decodedPayloads(events);
    const head = ciphertext.subarray(0, 48);
    const holding = decoded.filter((p) => {
      const data = Buffer.from(p.data ?? []);
      return occurrences(data, head) + occurrences(data, Buffer.from(head.toString('hex'))) > 0;
    });
    assert.equal(holding.length, 1, `the ciphertext is in ${holding.length} payloads`);
    assert.ok(Buffer.from(holding[0]!.data!).equals(Buffer.from(sealedPayload!.data!)));

    // Both submits carry a reference of a few hundred bytes, not the ciphertext.
    const submits = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'submitEnvUpdate');
    assert.equal(submits.length, 2, 'phase 1 and phase 2');
    for (const s of submits) {
      const size = proto.temporal.api.common.v1.Payloads.encode(s.activityTaskScheduledEventAttributes!.input!).finish().length;
      assert.ok(size < 2 * KiB, `a submit's input is ${size} bytes`);
    }
    // No payload went over the limit, and the budget predicted the largest one.
    const largest = Math.max(
      ...payloadsIn(events).map((p) => proto.temporal.api.common.v1.Payloads.encode({ payloads: [p] }).finish().length),
    );
    const budget = envPayloadBudget({ cvmId: cvm.id, env })!;
    assert.ok(largest <= DEFAULT_PAYLOAD_LIMIT_BYTES);
    assert.ok(largest <= budget.largest.bytes, `largest payload ${largest}, predicted ${budget.largest.bytes}`);
  });
}

/** 1024 long keys make the validated env (a list, plus the key list) outgrow the input itself. */
function inputThatFitsButItsStepsDoNot(): UpdateEnvInput {
  const key = (i: number) => `K${String(i).padStart(4, '0')}_${'A'.repeat(200)}`;
  for (let quotes = 600; quotes < 1000; quotes += 4) {
    const input = { cvmId: '', env: Object.fromEntries(Array.from({ length: 1024 }, (_, i) => [key(i), '"'.repeat(quotes)])) };
    const budget = envPayloadBudget(input)!;
    if (budget.needs[0]!.bytes <= DEFAULT_PAYLOAD_LIMIT_BYTES && !budget.fits) return input;
  }
  throw new Error('no such input');
}

test('an env that does not fit is refused by startEnvUpdate with the numbers, and nothing starts', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const env = envOf(8, () => '"'.repeat(128 * KiB - 8));
  const budget = envPayloadBudget({ cvmId: cvm.id, env })!;
  await assert.rejects(startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue }), (err: Error) => {
    assert.ok(err instanceof PayloadTooLargeError);
    assert.match(
      err.message,
      new RegExp(`^env is ${budget.envBytes} bytes; encoded it needs ${budget.largest.bytes} bytes of one payload`),
    );
    assert.match(err.message, new RegExp(`the limit is ${DEFAULT_PAYLOAD_LIMIT_BYTES}`));
    return true;
  });
  await assert.rejects(setup.h.client.workflow.getHandle(workflowIdForCvm(cvm.id)).describe(), /not found/i);
});

test('a start that skips the client check fails in the workflow at once, with the numbers, before any step', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const input = { ...inputThatFitsButItsStepsDoNot(), cvmId: cvm.id };
  const budget = envPayloadBudget(input)!;
  const handle = await setup.h.client.workflow.start(WORKFLOW_TYPE, {
    workflowId: workflowIdForCvm(cvm.id),
    taskQueue: setup.h.taskQueue,
    args: [input],
  });
  await assert.rejects(handle.result(), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(
      String(err.cause?.message),
      new RegExp(`^env is ${budget.envBytes} bytes; encoded it needs ${budget.largest.bytes} bytes`),
    );
    return true;
  });
  const events = await rawEvents(handle.workflowId);
  assert.equal(activityCalls(events).length, 0, 'no activity ran');
});

test('a start by a client without the payload codec is refused by the worker, and nothing copies the plaintext', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const secret = `sk_live_${randomBytes(16).toString('hex')}`;
  const plain = new Client({ connection: setup.h.client.connection, namespace: setup.stack.info.temporalNamespace });
  const handle = await plain.workflow.start(WORKFLOW_TYPE, {
    workflowId: workflowIdForCvm(cvm.id),
    taskQueue: setup.h.taskQueue,
    args: [{ cvmId: cvm.id, env: { API_KEY: secret } }],
  });
  try {
    const failed = await waitFor(
      'a failed workflow task',
      async () => (await rawEvents(handle.workflowId)).find((e) => e.workflowTaskFailedEventAttributes),
      20_000,
    );
    const error = await decodeOptionalFailureToOptionalError(
      setup.h.client.options.loadedDataConverter,
      failed.workflowTaskFailedEventAttributes!.failure,
    );
    assert.match(String(error?.message), /refused a payload that is not encrypted \(encoding "json\/plain"/);
    assert.match(String(error?.message), /PAYLOAD_ENCRYPTION_KEYS/);
    assert.doesNotMatch(String(error?.message), new RegExp(secret));

    const events = await rawEvents(handle.workflowId);
    assert.equal(activityCalls(events).length, 0, 'no step ran');
    // What the server received with the start is the only copy: no event after it holds the value.
    const raw = (e: HistoryEvent) => Buffer.from(proto.temporal.api.history.v1.HistoryEvent.encode(e).finish());
    assert.equal(occurrences(raw(events[0]!), Buffer.from(secret)), 1);
    for (const e of events.slice(1)) assert.equal(occurrences(raw(e), Buffer.from(secret)), 0, `event ${e.eventId} holds the value`);
    assert.equal((await handle.describe()).status.name, 'RUNNING');
  } finally {
    await handle.terminate('test: started without the payload codec');
  }
});

test('a submit on another worker, after the one that sealed the env crashed, sends the same ciphertext', { timeout: 240_000 }, async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['X'] });
  const env = envOf(8, (i) =>
    randomBytes(MAX_ENV_TOTAL_BYTES)
      .toString('base64')
      .slice(0, MAX_ENV_TOTAL_BYTES / 8 - `VAR_${i}`.length),
  );
  // Only worker processes from here on: one that seals the env and dies before phase 1, then another.
  await setup.worker.stop();
  const first = setup.h.spawnWorker({ WORKER_CRASH_BEFORE_ACTIVITY: 'submitEnvUpdate' });
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  assert.notEqual(await first.exited, 0, 'the first worker was killed');
  setup.h.spawnWorker();
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.applied, true);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);

  const events = await rawEvents(handle.workflowId);
  const identityOf = (name: string) => {
    const scheduled = events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name)
      .map((e) => String(e.eventId));
    return events
      .filter((e) => scheduled.includes(String(e.activityTaskStartedEventAttributes?.scheduledEventId)))
      .map((e) => e.activityTaskStartedEventAttributes!.identity);
  };
  const [sealedBy] = identityOf('sealEnv');
  const submittedBy = identityOf('submitEnvUpdate');
  assert.equal(submittedBy.length, 2, 'phase 1 and phase 2');
  for (const id of submittedBy) assert.notEqual(id, sealedBy, 'the submits ran on the second worker');
});
