// The activity side of workflows/sealed-env.ts: seal the ciphertext with its digest, and read
// it back from the run's own history through the worker's client and data converter.
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { SEALED_DIGEST_BYTES, type SealedEnvRef } from '../workflows/sealed-env.ts';
import { FAILURE } from '../failure-types.ts';

/** A ciphertext the submit cannot get back: retrying will not bring it, an operator looks. */
/** Few events per page: the pages around the encrypt step hold the env several times over. */
const HISTORY_PAGE_EVENTS = 4;

export function sealEnvelope(ciphertext: Uint8Array): Uint8Array {
  const out = new Uint8Array(SEALED_DIGEST_BYTES + ciphertext.length);
  out.set(createHash('sha256').update(ciphertext).digest(), 0);
  out.set(ciphertext, SEALED_DIGEST_BYTES);
  return out;
}

const unavailable = (ref: SealedEnvRef, why: string) =>
  ApplicationFailure.nonRetryable(`the env ciphertext of run ${ref.runId} (${ref.activityId}) ${why}`, FAILURE.SealedEnvUnavailable);

/** The sealed result's bytes, checked against the reference; the ciphertext as lowercase hex. */
export function openSealed(sealed: unknown, ref: SealedEnvRef): string {
  if (!(sealed instanceof Uint8Array) || sealed.length <= SEALED_DIGEST_BYTES) throw unavailable(ref, 'is not a sealed env');
  const ciphertext = sealed.subarray(SEALED_DIGEST_BYTES);
  const recorded = Buffer.from(sealed.subarray(0, SEALED_DIGEST_BYTES)).toString('hex');
  const actual = createHash('sha256').update(ciphertext).digest('hex');
  if (recorded !== actual || actual !== ref.sha256 || ciphertext.length !== ref.bytes) {
    throw unavailable(ref, `does not match its digest (expected sha256 ${ref.sha256}, ${ref.bytes} bytes)`);
  }
  return Buffer.from(ciphertext).toString('hex');
}

/** Reads the encrypt activity's result from the history of `workflowId`/`ref.runId`. */
export async function readSealedEnv(client: Client, workflowId: string, ref: SealedEnvRef): Promise<string> {
  let scheduledEventId: string | undefined;
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId, runId: ref.runId },
      maximumPageSize: HISTORY_PAGE_EVENTS,
      nextPageToken,
    });
    for (const event of page.history?.events ?? []) {
      if (event.activityTaskScheduledEventAttributes?.activityId === ref.activityId) {
        scheduledEventId = String(event.eventId);
      }
      const done = event.activityTaskCompletedEventAttributes;
      if (done && scheduledEventId !== undefined && String(done.scheduledEventId) === scheduledEventId) {
        const sealed = await decodeFromPayloadsAtIndex<Uint8Array>(client.options.loadedDataConverter, 0, done.result?.payloads);
        return openSealed(sealed, ref);
      }
    }
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  throw unavailable(ref, 'is not in its history');
}

/** From inside an activity: this run's workflow, through the worker's own client. */
export function readSealedEnvHere(ref: SealedEnvRef): Promise<string> {
  const ctx = Context.current();
  const workflowId = ctx.info.workflowExecution?.workflowId;
  if (!workflowId) return Promise.reject(unavailable(ref, 'cannot be read outside a workflow'));
  return readSealedEnv(ctx.client, workflowId, ref);
}
