// One patch marker per run instead of one per change. Every `patched(id)` records a marker
// and upserts the TemporalChangeVersion search attribute, a visibility write; a new update
// took seven of them, a third of its search attribute writes. A run that begins under the
// baseline takes every patch it covers without a marker of its own; runs from before it
// (their replays and their continuations of old runs) ask each patch as they always did.
import { patched } from '@temporalio/workflow';

export const UPDATE_BASELINE_PATCH = 'update-baseline-1';

/**
 * The patches the baseline stands for. A patch added after it is asked with `patched` as
 * usual, and joins a later baseline.
 */
export const BASELINE_COVERS = [
  'signer-manager',
  'owner-watch',
  'payload-budget',
  'sealed-env',
  'request-guard',
  'newest-tx-wins',
  'refind-registration',
  'input-schema',
  'bounded-waits',
  'registration-continues',
  'reask-backoff',
  'local-reads',
] as const;

export type BaselinePatch = (typeof BASELINE_COVERS)[number];

// Module state is per workflow run: each run of the workflow sandbox loads its own modules.
let baseline: boolean | undefined;

/**
 * Decides, first thing in a run, whether it began under the baseline. Asked once and kept:
 * the answer must not change within a run (an old run would otherwise switch on every patch
 * halfway through when it replays past its last recorded event).
 */
export function beginPatches(): boolean {
  baseline ??= patched(UPDATE_BASELINE_PATCH);
  return baseline;
}

/** `patched(id)`, answered by the baseline in runs that began under it. */
export function since(id: BaselinePatch): boolean {
  return baseline === true || patched(id);
}
