// One long-lived workflow per (chain, key): the only thing that signs with the key. It
// hands out nonces, records every signed transaction in history before broadcasting it,
// follows all of them at once, one look per block, and answers the update workflows.
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  patched,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../../activities/index.ts';
import type { SignerObservationResult, SignerSettings } from '../../activities/types.ts';
import { CONFIG_FAILURES } from '../../failure-types.ts';
import { emptySignerState, SignerBook } from './book.ts';
import {
  registerSignal,
  registrationNoticeSignal,
  SignerAttribute,
  signerStatusQuery,
  withdrawSignal,
  type SignerManagerInput,
} from './definitions.ts';
import { parseRegistrationRequest, parseWithdrawRequest } from './requests.ts';

type Activities = ReturnType<typeof createActivities>;

// Configuration errors (see the catalogue): retrying cannot help until an operator fixes the worker.

// The manager must outlive any outage: its activities retry without a limit, backing off.
const acts = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: CONFIG_FAILURES },
});

/**
 * Longest wait for the next block inside one watcher call. On a chain that mines nothing a
 * dropped transaction is only noticed by looking, so this is also how often we look.
 */
const WATCH_SLICE_MS = 5_000;
/** History length at which a run hands its books to a fresh run, unless the server asks earlier. */
const DEFAULT_MAX_HISTORY_EVENTS = 10_000;
/**
 * Since 'manager-short-history': every worker that picks the manager up after a crash replays
 * its whole history first, and under frequent restarts a long one times its tasks out (seen at
 * ~2,600 events with workers killed every 2 s). A short history keeps that replay cheap; the
 * books carried across continue-as-new are small.
 */
const SHORT_HISTORY_EVENTS = 2_000;
const SHORT_HISTORY_PATCH = 'manager-short-history';
/** With nothing to do the manager sleeps this long before it looks at its history size again. */
const IDLE_WAIT = '1 hour';
/**
 * Since 'quiet-notices': a `sent` or `mined` answer goes out only once that state has lasted
 * this long. Each answer costs the manager two history events and the asker a signal and a
 * workflow task, and the server's CPU is what a large fleet waits on; on a quick chain an ask
 * is answered `confirmed` and nothing else, while on a slow one operators still see the
 * transaction hashes and the wait for depth. Longer than a block on Base or anvil, under one
 * on Ethereum; equal to the watcher's slice, so a due answer never waits long for a wake-up.
 */
const QUIET_NOTICE_MS = 5_000;
const QUIET_NOTICES_PATCH = 'quiet-notices';
const MINUTE_MS = 60_000;

export async function signerManagerWorkflow(input: SignerManagerInput): Promise<void> {
  const { chainId, signer } = input;
  const book = new SignerBook(input.state ?? emptySignerState());
  const now = () => Date.now();
  let asked = 0;
  // Decided once per run: a run that started without it answers as it always did, to its end.
  const quiet = patched(QUIET_NOTICES_PATCH);
  /** Signals on their way to askers; a run hands over to the next only once they have landed. */
  const delivering = new Set<Promise<void>>();

  // A signal handler never throws: that would fail every workflow task and stop the manager
  // for every update of this key. What it cannot use is ignored, and the status says why.
  setHandler(registerSignal, (arg: unknown) => {
    const r = parseRegistrationRequest(arg);
    if (!r.ok) return void (book.state.lastError = r.problem);
    book.request(r.value, now());
    asked++;
  });
  setHandler(withdrawSignal, (arg: unknown) => {
    const w = parseWithdrawRequest(arg);
    if (!w.ok) return void (book.state.lastError = w.problem);
    book.withdraw(w.value, now());
    asked++;
  });
  setHandler(signerStatusQuery, () => book.status(chainId, signer, now(), workflowInfo().historyLength));
  upsertSearchAttributes([{ key: SignerAttribute, value: `${chainId}:${signer}` }]);

  const settings = await loadSettings();
  book.setDefaultConfirmations(settings.confirmations);

  let watching: Promise<void> | undefined;
  let seen: { obs: SignerObservationResult; asked: ReturnType<SignerBook['observeInput']> } | undefined;
  let watchFailed = false;
  for (;;) {
    const work = asked;
    const ok =
      (await guarded(signQueued, (reason) => book.queued().forEach((reg) => book.fail(reg, reason, now())))) &&
      (await guarded(replaceDue)) &&
      (await guarded(fillGaps));
    await answer();
    book.retire(now());
    if (!ok) {
      // Not retryable (e.g. the chain refuses the input): said in the status; look again later.
      await condition(() => asked !== work, quiet ? untilNoticeDue(MINUTE_MS) : '1 minute');
      continue;
    }

    if (!watching && timeToMoveOn()) break;
    if (book.idle()) {
      await condition(() => asked !== work, IDLE_WAIT);
      continue;
    }
    if (!watching) {
      const question = book.observeInput();
      watching = acts
        .observeSignerTransactions({
          chainId,
          from: signer,
          afterBlock: book.state.head,
          // Back in time for the next stall or gap deadline, or a held answer, whatever the chain does.
          maxWaitMs: Math.max(
            250,
            Math.min(WATCH_SLICE_MS, book.nextDeadline(now(), settings.stallMs) - now(), quiet ? untilNoticeDue(WATCH_SLICE_MS) : Infinity),
          ),
          ...question,
        })
        .then(
          (obs) => void (seen = { obs, asked: question }),
          (err: unknown) => {
            book.state.lastError = `watching the chain failed: ${messageOf(err)}`;
            watchFailed = true;
          },
        );
    }
    // A new request is signed at once, not after the next block.
    await condition(() => seen !== undefined || watchFailed || asked !== work);
    if (watchFailed) {
      watchFailed = false;
      watching = undefined;
      await condition(() => asked !== work, quiet ? untilNoticeDue(MINUTE_MS) : '1 minute');
    }
    if (seen) {
      const rebroadcast = book.applyObservation(seen.obs, seen.asked, now());
      seen = undefined;
      watching = undefined;
      await guarded(() => broadcast(rebroadcast, true));
    }
  }

  await Promise.all(delivering);
  await condition(allHandlersFinished);
  book.state.generation++;
  await continueAsNew<typeof signerManagerWorkflow>({ ...input, state: book.state });

  async function loadSettings(): Promise<SignerSettings> {
    for (;;) {
      try {
        return await acts.signerSettings({ chainId, signer });
      } catch (err) {
        // A worker without this key (or this chain) cannot serve anyone: say so to every
        // asker, and try again when asked again.
        const reason = messageOf(err);
        book.state.lastError = reason;
        for (const reg of book.queued()) book.fail(reg, reason, now());
        await answer();
        const before = asked;
        await condition(() => asked !== before);
      }
    }
  }

  async function signQueued(): Promise<void> {
    const queued = book.queued();
    if (queued.length === 0) return;
    const { results } = await acts.signNewRegistrations({
      chainId,
      signer,
      nextNonce: book.state.nextNonce,
      registrations: queued.map((r) => ({ appId: r.appId, composeHash: r.composeHash })),
    });
    const toSend: number[] = [];
    for (const res of results) {
      const reg = queued.find((r) => r.appId === res.appId && r.composeHash === res.composeHash);
      if (!reg) continue;
      if (res.outcome === 'signed') {
        if (book.reg(reg.key) === reg && reg.subscribers.length > 0) {
          book.applyNewSigning(reg, res.signed, now());
          toSend.push(res.signed.nonce);
        } else {
          book.applyWithdrawnSigning(res.signed, now());
        }
      } else if (res.outcome === 'already_allowed') {
        book.markAllowedElsewhere(reg, now());
      } else {
        book.fail(reg, res.reason, now());
      }
    }
    // Signed bytes are in history (the activity's result) before any of them is broadcast.
    await broadcast(toSend, false);
  }

  async function replaceDue(): Promise<void> {
    for (const r of book.dueReplacements(now(), settings.stallMs)) {
      const res = await acts.signReplacement({ chainId, signer, nonce: r.nonce, payload: r.payload, previous: r.previous });
      if (res.outcome === 'at_cap') {
        book.applyAtCap(r.nonce, res, now());
        continue;
      }
      book.applyReplacement(r.nonce, res.signed, r.payload.kind, now());
      const slot = book.slot(r.nonce);
      if (r.payload.kind === 'register' && slot?.cancelled) {
        // Withdrawn while this signing ran: these bytes stay unsent; a self-send follows.
        slot.replaceNow = true;
        continue;
      }
      await broadcast([r.nonce], false);
    }
  }

  async function fillGaps(): Promise<void> {
    for (const nonce of book.dueFills(now(), settings.stallMs)) {
      const res = await acts.signReplacement({ chainId, signer, nonce, payload: { kind: 'self' } });
      if (res.outcome === 'at_cap') {
        book.postponeFill(nonce, now());
        continue;
      }
      book.applyFill(res.signed, now());
      await broadcast([nonce], false);
    }
  }

  /** Sends the latest signing of each nonce, all in one activity. */
  async function broadcast(nonces: number[], again: boolean): Promise<void> {
    const slots = nonces.map((n) => book.slot(n)).filter((s) => s !== undefined && s.txs.length > 0);
    if (slots.length === 0) return;
    const outcomes = await acts.broadcastTransactions({ chainId, raws: slots.map((s) => s!.txs.at(-1)!.raw) });
    slots.forEach((s, i) => book.applyBroadcast(s!.nonce, outcomes[i]!));
    if (again) book.state.stats.rebroadcast += slots.length;
  }

  /** Signals every asker what changed for it; an asker that has closed is forgotten. */
  async function answer(): Promise<void> {
    if (quiet) return tell();
    const notices = book.notices();
    await Promise.all(
      notices.map(async (n) => {
        let delivered = true;
        try {
          await getExternalWorkflowHandle(n.workflowId).signal(registrationNoticeSignal, n.notice);
        } catch {
          delivered = false;
        }
        book.markTold(n, delivered);
      }),
    );
  }

  /**
   * Since 'quiet-notices': only the answers due are sent, and the loop does not wait for them
   * to land. Each is booked as told when it leaves, so the next turn does not send it again;
   * one that cannot be delivered (the asker has closed) forgets its asker, as before.
   */
  function tell(): void {
    for (const n of book.notices({ now: now(), ms: QUIET_NOTICE_MS })) {
      book.markTold(n, true);
      const delivery: Promise<void> = getExternalWorkflowHandle(n.workflowId)
        .signal(registrationNoticeSignal, n.notice)
        .catch(() => book.markTold(n, false))
        .finally(() => delivering.delete(delivery));
      delivering.add(delivery);
    }
  }

  /** Milliseconds until the next held answer is due, at most `capMs`. */
  function untilNoticeDue(capMs: number): number {
    return Math.max(0, Math.min(capMs, book.nextNoticeDue(QUIET_NOTICE_MS) - now()));
  }

  /** Runs a step; a failure its retries could not cure is recorded, not fatal to the manager. */
  async function guarded(step: () => Promise<void>, onFailure?: (reason: string) => void): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const reason = messageOf(err);
      book.state.lastError = reason;
      onFailure?.(reason);
      return false;
    }
  }

  function timeToMoveOn(): boolean {
    const info = workflowInfo();
    if (info.continueAsNewSuggested) return true;
    const limit = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;
    if (info.historyLength >= limit) return true;
    // Asked only past the short limit, so histories recorded before it replay as they ran.
    return info.historyLength >= Math.min(limit, SHORT_HISTORY_EVENTS) && patched(SHORT_HISTORY_PATCH);
  }
}

function messageOf(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  if (cause instanceof ApplicationFailure || cause instanceof Error) return cause.message.split('\n')[0]!.slice(0, 300);
  return String(cause);
}
