// The update's quick reads run as local activities: in the worker that runs the workflow task,
// each recorded as one marker, instead of an activity task that costs the server about six
// events and a workflow task round trip. Only calls that change nothing, or that may run again
// freely (the manager's ask is an idempotent signal-with-start), qualify: a local activity is
// run again, without a record of the first try, when its worker dies mid-task.
import { ActivityCancellationType, proxyLocalActivities, type LocalActivityOptions } from '@temporalio/workflow';
import { since } from './patch-baseline.ts';
import type { createActivities } from '../activities/index.ts';
import { STEP_RETRY } from './step-retry.ts';

type Activities = ReturnType<typeof createActivities>;

/** Runs since this patch read locally; earlier runs (and their replays) keep activity tasks. */
export const LOCAL_READS_PATCH = 'local-reads';

const LOCAL: LocalActivityOptions = {
  retry: STEP_RETRY,
  // Short pauses between tries stay in the worker. Longer ones are timers: while a local
  // activity is outstanding the workflow task stays open and a signal (an abort) waits for it.
  localRetryThreshold: '2 seconds',
};

/**
 * Reads of the API, and of the Temporal server. An abort leaves them at once: their answer is
 * no longer needed and they changed nothing. The timeout leaves room for the client's own 30 s.
 */
export const apiReads = proxyLocalActivities<Activities>({
  ...LOCAL,
  startToCloseTimeout: '45 seconds',
  cancellationType: ActivityCancellationType.TRY_CANCEL,
});

/** Reads of the chain; a preflight may scan a few thousand blocks of logs for an earlier registration. */
export const chainReads = proxyLocalActivities<Activities>({
  ...LOCAL,
  startToCloseTimeout: '60 seconds',
  cancellationType: ActivityCancellationType.TRY_CANCEL,
});

/**
 * Asks of the signer's transaction manager. An abort waits until the ask has returned (it is
 * cut short with its gRPC call), so that the withdraw sent after it reaches the manager later.
 */
export const managerAsks = proxyLocalActivities<Activities>({
  ...LOCAL,
  startToCloseTimeout: '30 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** `local` in runs since 'local-reads'; `regular` (activity tasks) in runs from before. */
export function readVia<T>(regular: T, local: T): T {
  return since(LOCAL_READS_PATCH) ? local : regular;
}
