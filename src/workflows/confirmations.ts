// Waiting for a registration's depth in workflow code: one activity per slice, so a long
// wait is a handful of events, and a reorg comes back as an answer, not an error. After a few
// slices the checks pause on a growing timer (bounded-wait.ts).
import type { createActivities } from '../activities/index.ts';
import type { MinedTx } from '../activities/types.ts';
import type { UpdateStatus } from './definitions.ts';
import { pauseBetweenSlices } from './bounded-wait.ts';

type Activities = ReturnType<typeof createActivities>;
type Timed = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

export interface ConfirmationOptions {
  chain: Pick<Activities, 'checkConfirmations'>;
  status: UpdateStatus;
  chainId: number;
  tx: MinedTx;
  confirmations: number;
  sliceMs: number;
  timed: Timed;
  /** Slices a previous run already spent on this wait: the pauses go on growing from there. */
  firstSlice?: number;
  /** Called after every pause with the next slice's number; may continue as new (it then never returns). */
  afterPause?: (nextSlice: number) => Promise<void>;
}

/** Resolves with the confirmed transaction, or undefined when a reorg removed it. */
export async function waitForConfirmations(o: ConfirmationOptions): Promise<MinedTx | undefined> {
  for (let slices = o.firstSlice ?? 1; ; slices++) {
    const check = await o.timed('checkConfirmations', () =>
      o.chain.checkConfirmations({ chainId: o.chainId, tx: o.tx, confirmations: o.confirmations, maxWaitMs: o.sliceMs }),
    );
    if (check.state === 'reorged') return undefined;
    o.status.confirmations = check.confirmations;
    if (check.state === 'confirmed') return o.tx;
    // A chain that stalls for hours costs a timer per pause, not a stream of slices.
    await pauseBetweenSlices(slices);
    await o.afterPause?.(slices + 1);
  }
}
