// Long waits in workflow code (a slow apply, confirmations on a stalled chain, an owner who
// signs days later) must not grow the history without bound: the server terminates a run at
// 50K events. A polling slice costs about 6 events, a timer 5 more, so after a few back-to-back
// slices the waits pause on a growing timer, and a run whose history is long continues as new.
import { ContinueAsNew, sleep, workflowInfo } from '@temporalio/workflow';
import { since, type BaselinePatch } from './patch-baseline.ts';

/** Waits that pause between slices and continue as new; runs recorded before it poll back to back. */
export const BOUNDED_WAITS_PATCH = 'bounded-waits';

/**
 * The registration waits (the owner's registration, confirmations, the signer manager's answer)
 * continue as new too; before it only the apply wait did.
 */
export const REGISTRATION_CONTINUES_PATCH = 'registration-continues';

/** Slices polled back to back first: a quick result is still seen by the poller's own fast checks. */
const FAST_SLICES = 3;
const FIRST_PAUSE_MS = 15_000;
const MAX_PAUSE_MS = 5 * 60_000;

/**
 * A run past this many events continues as new. Far below the server's limit, and it keeps a
 * worker's replay of one run short; at the longest pause a run lasts about 15 hours.
 */
export const HISTORY_BUDGET = 2_000;

/** The pause after `slicesDone` slices saw nothing: none at first, then doubling up to a cap. */
export function pauseAfterSlices(slicesDone: number): number {
  if (slicesDone <= FAST_SLICES) return 0;
  return Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** Math.min(slicesDone - FAST_SLICES - 1, 16));
}

/** Sleeps the pause due after `slicesDone` empty slices (a timer: two events, however long). */
export async function pauseBetweenSlices(slicesDone: number): Promise<void> {
  const ms = pauseAfterSlices(slicesDone);
  if (ms > 0 && since(BOUNDED_WAITS_PATCH)) await sleep(ms);
}

/**
 * True when this run should hand over to a new one (the server's suggestion, or our own budget).
 * `patch` names the change that let this wait continue as new: a history recorded before it
 * went on in the same run and must replay that way.
 */
export function historyBudgetSpent(patch: BaselinePatch = BOUNDED_WAITS_PATCH): boolean {
  const info = workflowInfo();
  if (!info.continueAsNewSuggested && info.historyLength < HISTORY_BUDGET) return false;
  return since(patch);
}

export function isContinueAsNew(err: unknown): boolean {
  return err instanceof ContinueAsNew;
}
