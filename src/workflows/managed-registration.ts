// The update workflow's side of the per-signer transaction manager: ask it to register
// (app, hash), follow its answers, ask again if none comes, and withdraw on abort.
import { CancellationScope, condition, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import { since } from './patch-baseline.ts';
import { historyBudgetSpent, REGISTRATION_CONTINUES_PATCH } from './bounded-wait.ts';
import type { createActivities } from '../activities/index.ts';
import type { MinedTx } from '../activities/types.ts';
import {
  registrationKey,
  registrationNoticeSignal,
  signerWorkflowId,
  withdrawSignal,
  type RegistrationNotice,
} from './signer-manager/definitions.ts';
import type { UpdateTracker } from './update-tracker.ts';
import { managerAsks, readVia } from './local-reads.ts';

type Activities = ReturnType<typeof createActivities>;

/** Without an answer for this long, ask again: the ask is idempotent, a lost one costs nothing. */
const ASK_AGAIN_AFTER = '2 minutes';

/**
 * Each ask still unanswered doubles the time to the next one, up to half an hour: a manager
 * busy with a stalled chain is asked about 50 times a day, not 720 (each ask is some 10
 * events). Before it, the ask was repeated every 2 minutes.
 */
const REASK_BACKOFF_PATCH = 'reask-backoff';
const FIRST_ASK_AGAIN_MS = 2 * 60_000;
const MAX_ASK_AGAIN_MS = 30 * 60_000;

/** The wait after the `asked`-th ask (1-based) before asking again. */
export function askAgainAfter(asked: number): number {
  return Math.min(MAX_ASK_AGAIN_MS, FIRST_ASK_AGAIN_MS * 2 ** Math.min(Math.max(asked, 1) - 1, 16));
}

export interface RegistrationAsk {
  chainId: number;
  signer: string;
  appId: string;
  composeHash: string;
  confirmations: number;
  /** The block at which preflight read the hash as not allowed. */
  notAllowedAtBlock?: number;
}

export type RegistrationAnswer =
  | { kind: 'confirmed'; tx: MinedTx; confirmations: number }
  | { kind: 'already_allowed' }
  | { kind: 'failed'; reason: string }
  /** This run's history is long: the caller continues as new and asks again from `asked`. */
  | { kind: 'continue'; asked: number };

/**
 * Since 'ordered-notices': an intermediate answer that lands after a final one is not taken
 * as the latest. The manager no longer waits for one answer to land before sending the next
 * (since 'quiet-notices'), and the server delivers signals from one workflow to another in no
 * guaranteed order: a `mined` landing after `confirmed` left the update waiting in
 * `confirming` until it asked again, two minutes later (seen once in a 200-update fleet).
 */
const ORDERED_NOTICES_PATCH = 'ordered-notices';

const isFinalNotice = (n: RegistrationNotice | undefined) =>
  n?.state === 'confirmed' || n?.state === 'already_allowed' || n?.state === 'failed';

export class ManagedRegistration {
  private readonly latest = new Map<string, RegistrationNotice>();
  private outstanding: RegistrationAsk | undefined;

  constructor(
    private readonly tracker: UpdateTracker,
    private readonly acts: Pick<Activities, 'requestRegistration'>,
  ) {
    setHandler(registrationNoticeSignal, (n: unknown) => {
      // Sent by the manager; anything else (the UI's signal form, a typo) is ignored, never thrown.
      if (!isNotice(n)) {
        this.tracker.status.lastError = 'registrationNotice ignored: it is not a notice of the transaction manager';
        this.tracker.showDetails();
        return;
      }
      const key = registrationKey(n.appId, n.composeHash);
      const late = isFinalNotice(this.latest.get(key)) && !isFinalNotice(n) && since(ORDERED_NOTICES_PATCH);
      if (!late) this.latest.set(key, n);
      const status = this.tracker.status;
      // A quiet manager may answer `confirmed` (or `mined`) first: that answer carries the signing.
      const sent = n.state === 'sent' ? n.tx : n.state === 'mined' || n.state === 'confirmed' ? n.sent : undefined;
      if (sent && !status.sentTransactions.some((t) => t.hash === sent.hash)) status.sentTransactions.push(sent);
      if (!late && (n.state === 'mined' || n.state === 'confirmed')) {
        status.transactionHash = n.tx.hash;
        status.blockNumber = n.tx.blockNumber;
      }
    });
  }

  /**
   * Resolves when the manager answers for good: confirmed at our depth, or why not.
   * `asked`: asks an earlier run of this change already made, for the backoff.
   */
  async obtain(ask: RegistrationAsk, asked = 0): Promise<RegistrationAnswer> {
    const key = registrationKey(ask.appId, ask.composeHash);
    const { workflowId } = workflowInfo();
    const requestId = askerId();
    this.latest.delete(key);
    this.outstanding = ask;
    const final = () => {
      const n = this.latest.get(key);
      return isFinalNotice(n) ? n : undefined;
    };
    for (;;) {
      asked++;
      await this.tracker.step('chainMs', 'requestRegistration', () =>
        readVia(this.acts, managerAsks).requestRegistration({
          chainId: ask.chainId,
          signer: ask.signer,
          request: {
            requestId,
            appId: ask.appId,
            composeHash: ask.composeHash,
            confirmations: ask.confirmations,
            notifyWorkflowId: workflowId,
            ...(ask.notAllowedAtBlock !== undefined ? { notAllowedAtBlock: ask.notAllowedAtBlock } : {}),
          },
        }),
      );
      const askAgain = since(REASK_BACKOFF_PATCH) ? askAgainAfter(asked) : ASK_AGAIN_AFTER;
      // The server's suggestion, or our budget: a continued run asks again with the same id.
      const longHistory = () => since(REASK_BACKOFF_PATCH) && historyBudgetSpent(REGISTRATION_CONTINUES_PATCH);
      const t0 = Date.now();
      const answered = await condition(() => final() !== undefined || this.latest.get(key)?.state === 'mined', askAgain);
      this.tracker.status.timings.chainMs += Date.now() - t0;
      if (!answered) {
        if (longHistory()) return { kind: 'continue', asked };
        continue;
      }
      if (!final()) {
        // Mined: the rest is depth.
        this.tracker.enter('confirming');
        const t1 = Date.now();
        const deep = await condition(() => final() !== undefined, askAgain);
        this.tracker.status.timings.chainMs += Date.now() - t1;
        if (!deep) {
          if (longHistory()) return { kind: 'continue', asked };
          continue;
        }
      }
      const n = final()!;
      this.outstanding = undefined;
      if (n.state === 'confirmed') return { kind: 'confirmed', tx: n.tx, confirmations: n.confirmations };
      if (n.state === 'failed') return { kind: 'failed', reason: n.reason };
      return { kind: 'already_allowed' };
    }
  }

  /**
   * After an abort: tell the manager nobody here waits any more, so it sends nothing new for
   * this change. Runs outside the cancelled scope; once it returns the manager has the word.
   */
  async withdraw(): Promise<void> {
    const ask = this.outstanding;
    if (!ask) return;
    this.outstanding = undefined;
    await CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(signerWorkflowId(ask.chainId, ask.signer))
        .signal(withdrawSignal, { requestId: askerId(), appId: ask.appId, composeHash: ask.composeHash })
        .catch(() => undefined),
    );
  }
}

/**
 * Who asks, the same in every run of one change: a continued run's ask replaces the earlier
 * run's, and its withdraw reaches it. (The first run of a chain is the run itself, so runs that
 * never continued ask with the id they always had.)
 */
function askerId(): string {
  const { workflowId, firstExecutionRunId } = workflowInfo();
  return `${workflowId}/${firstExecutionRunId}`;
}

const NOTICE_STATES = new Set(['sent', 'mined', 'confirmed', 'already_allowed', 'failed']);

function isNotice(n: unknown): n is RegistrationNotice {
  if (typeof n !== 'object' || n === null) return false;
  const o = n as Record<string, unknown>;
  if (typeof o.appId !== 'string' || typeof o.composeHash !== 'string' || !NOTICE_STATES.has(o.state as string)) return false;
  if (o.state === 'failed') return typeof o.reason === 'string';
  if (o.state === 'already_allowed') return true;
  const tx = o.tx as Record<string, unknown> | null | undefined;
  return (
    typeof tx === 'object' &&
    tx !== null &&
    typeof tx.hash === 'string' &&
    (o.state !== 'confirmed' || typeof o.confirmations === 'number') &&
    (o.sent === undefined || isSentTx(o.sent))
  );
}

function isSentTx(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Record<string, unknown>;
  return (
    typeof t.hash === 'string' &&
    typeof t.nonce === 'number' &&
    typeof t.maxFeePerGas === 'string' &&
    typeof t.maxPriorityFeePerGas === 'string'
  );
}
