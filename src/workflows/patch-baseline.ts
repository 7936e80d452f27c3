// One patch marker per run instead of one per change. Every `patched(id)` records a marker
// and upserts the TemporalChangeVersion search attribute, a visibility write; a new update
// took seven of them, a third of its search attribute writes. A run that begins under the
// baseline takes every patch it covers without a marker of its own; runs from before it
// (their replays and their continuations of old runs) ask each patch as they always did.
import { patched } from '@temporalio/workflow';

/**
 * The patches the first baseline stands for. A patch added after a baseline is asked with
 * `patched` as usual by runs under that baseline, and joins the next baseline.
 */
const BASELINE_1 = [
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

/** Baselines, newest first; a new run takes the newest, and each covers all before it. */
const BASELINES = [
  { id: 'update-baseline-2', covers: [...BASELINE_1, 'ordered-notices'] },
  { id: 'update-baseline-1', covers: BASELINE_1 },
] as const;

/** The baseline new runs begin under. */
export const UPDATE_BASELINE_PATCH = BASELINES[0].id;
/** Every baseline, for readers of recorded histories. */
export const UPDATE_BASELINE_PATCHES: readonly string[] = BASELINES.map((b) => b.id);

export type BaselinePatch = (typeof BASELINES)[0]['covers'][number];

// Module state is per workflow run: each run of the workflow sandbox loads its own modules.
let covered: ReadonlySet<string> | undefined;

/**
 * Decides, first thing in a run, which baseline it began under, if any. Asked once and kept:
 * the answer must not change within a run (an old run would otherwise switch on every patch
 * halfway through when it replays past its last recorded event). A new run records the newest
 * baseline's marker only; a replayed run finds the marker it recorded.
 */
export function beginPatches(): boolean {
  covered ??= new Set<string>(BASELINES.find((b) => patched(b.id))?.covers ?? []);
  return covered.size > 0;
}

/** `patched(id)`, answered by the baseline in runs that began under one covering it. */
export function since(id: BaselinePatch): boolean {
  return covered?.has(id) === true || patched(id);
}
