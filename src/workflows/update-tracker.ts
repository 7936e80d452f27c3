// The bookkeeping of one update: its status (the `status` query), phase changes (the
// UpdatePhase search attribute), per-step timings and attempts, and the operator's hand
// (retry, abort, useTransaction). The update workflow itself keeps only its story.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { MinedTx } from '../activities/types.ts';
import { describeState } from './current-details.ts';
import { parseAbortArg, parseRetryArg, parseTransactionArg } from './operator-input.ts';
import {
  abortSignal,
  CvmIdAttribute,
  RequestIdAttribute,
  retrySignal,
  statusQuery,
  UpdatePhaseAttribute,
  useTransactionSignal,
  type UpdateEnvResult,
  type UpdatePhase,
  type UpdateStatus,
} from './definitions.ts';
import { FAILURE, FINAL_FAILURES } from '../failure-types.ts';

export type Bucket = 'apiMs' | 'chainMs';

/**
 * Phases of a read or two between the ones an update waits in. In compact runs the UpdatePhase
 * search attribute skips them: each write is a visibility write on the server, and an update
 * passed through these in well under a second. The status query and the UI's details still
 * name them; an update that waits for an operator in one shows `awaiting_operator`.
 */
const PASSING_PHASES: ReadonlySet<UpdatePhase> = new Set(['resolving', 'encrypting', 'checking']);

// Module state is per workflow run (the sandbox loads modules per run): this run's tracker.
let tracker: UpdateTracker | undefined;

/** The phase the update in this run is in now, passing ones included: for the phase metrics. */
export function livePhase(): UpdatePhase | undefined {
  return tracker?.status.phase;
}

export type OperatorWay = 'retry' | 'useTransaction';
/** `verified`: already checked on chain against the registration this change needs. */
export type OperatorAction = { kind: 'retry' } | { kind: 'useTransaction'; hash: string; verified?: MinedTx } | { kind: 'resolved' };

/** The registration a handed-over transaction must carry, known once phase 1 asked for one. */
export interface RegistrationTarget {
  chainId: number;
  appId: string;
  composeHash: string;
}

/** What an operator may do right now. */
export interface OperatorWait {
  why: string;
  accepts: readonly OperatorWay[];
}

export class UpdateTracker {
  readonly status: UpdateStatus;
  /** Cancelled by an abort: whatever step runs stops. */
  readonly work = new CancellationScope();
  abortReason: string | undefined;
  private phaseStarted: number;
  private retryRequested = false;
  /** The newest transaction handed over and not yet taken; kept until the flow can use it. */
  private offered: { hash: string; verified?: MinedTx } | undefined;
  private currentWait: OperatorWait | undefined;
  /** True while the flow checks a handed-over transaction: a newer one replaces it. */
  checkingTransaction = false;
  registrationTarget: RegistrationTarget | undefined;

  private readonly startedAt: number;
  /** Fewer search attribute writes (runs under the patch baseline): see `enter`. */
  private readonly compact: boolean;
  /** The UpdatePhase value last written. */
  private shownPhase: UpdatePhase | undefined;

  /**
   * `resumed`: the status an earlier run of the same change handed over when it continued as new.
   * `compact`: write the phase only when it changes, and not for phases an update passes through.
   * `requestId`: written with the first attributes (compact runs).
   */
  constructor(cvmId: string, resumed?: UpdateStatus, opts: { compact?: boolean; requestId?: string } = {}) {
    this.compact = opts.compact === true;
    this.startedAt = resumed ? Date.parse(resumed.timings.startedAt) : Date.now();
    // The current phase began where the finished ones end.
    this.phaseStarted = this.startedAt + (resumed?.timings.phases.reduce((sum, p) => sum + p.ms, 0) ?? 0);
    this.status = resumed ?? {
      cvmId,
      phase: 'validating',
      sentTransactions: [],
      attempts: {},
      timings: { startedAt: new Date(this.startedAt).toISOString(), apiMs: 0, chainMs: 0, operatorMs: 0, phases: [] },
    };
    // What an operator looks for first comes first in the UI's query view.
    setHandler(statusQuery, () => {
      const { cvmId: id, phase, waitingFor, lastError, ...rest } = this.status;
      return { cvmId: id, phase, waitingFor, lastError, ...rest };
    });
    // Signals come from anywhere (the UI's form, `temporal workflow signal` without input, old
    // clients): a handler that threw would fail every workflow task. What cannot be used is
    // ignored, and why is in the status.
    setHandler(retrySignal, (arg?: unknown) =>
      this.safely('retry', () => {
        const parsed = parseRetryArg(arg);
        if (!parsed.ok) this.ignored(`retry: its argument was ignored (${parsed.problem})`);
        if (this.waitingFor('retry')) this.requestRetry();
        else this.ignored(`retry ignored: ${this.refusal('retry')}`);
      }),
    );
    setHandler(abortSignal, (arg?: unknown) =>
      this.safely('abort', () => {
        const parsed = parseAbortArg(arg);
        // An abort always stops the change; only a reason it cannot read is dropped.
        if (!parsed.ok) this.ignored(`abort: its reason was ignored (${parsed.problem})`);
        this.requestAbort(parsed.ok ? parsed.value.reason : undefined);
      }),
    );
    setHandler(useTransactionSignal, (arg?: unknown) =>
      this.safely('useTransaction', () => {
        const parsed = parseTransactionArg(arg);
        if (parsed.ok) this.offerTransaction(parsed.value);
        else this.ignored(`useTransaction ignored: ${parsed.problem}`);
      }),
    );
    upsertSearchAttributes([
      { key: CvmIdAttribute, value: cvmId },
      { key: UpdatePhaseAttribute, value: this.status.phase },
      ...(opts.requestId ? [{ key: RequestIdAttribute, value: opts.requestId }] : []),
    ]);
    this.shownPhase = this.status.phase;
    tracker = this;
  }

  enter(phase: UpdatePhase): void {
    const now = Date.now();
    if (this.status.phase !== phase) {
      this.status.timings.phases.push({ phase: this.status.phase, ms: now - this.phaseStarted });
      this.phaseStarted = now;
    }
    this.status.phase = phase;
    if (!this.compact || this.shows(phase)) {
      upsertSearchAttributes([{ key: UpdatePhaseAttribute, value: phase }]);
      this.shownPhase = phase;
    }
    this.showDetails();
  }

  /** Whether `phase` is written (compact runs): a passing phase only when it ends an operator's wait. */
  private shows(phase: UpdatePhase): boolean {
    if (PASSING_PHASES.has(phase) && this.shownPhase !== 'awaiting_operator') return false;
    return phase !== this.shownPhase;
  }

  /** The UI's "current details": what the change does or waits for, and what an operator can do. */
  showDetails(): void {
    setCurrentDetails(describeState(this.status, this.currentWait));
  }

  /** What an operator may do now; undefined while nothing waits for a person. */
  get wait(): OperatorWait | undefined {
    return this.currentWait;
  }

  waitingFor(way: OperatorWay): boolean {
    if (way === 'useTransaction' && this.checkingTransaction) return true;
    return this.currentWait?.accepts.includes(way) === true;
  }

  /** Why `way` cannot be taken now, in the words an operator gets back. */
  refusal(way: OperatorWay): string {
    const w = this.currentWait;
    if (!w) return `not waiting for an operator (phase: ${this.status.phase})`;
    const takes = [...w.accepts, 'abort'].join(', ');
    return `not waiting for ${way === 'retry' ? 'a retry' : 'a transaction'}: it waits for ${w.why} (it takes: ${takes})`;
  }

  requestRetry(): void {
    this.retryRequested = true;
  }

  requestAbort(reason: string | undefined): void {
    this.abortReason ??= reason || 'aborted by an operator';
    this.work.cancel();
  }

  /** The newest hand-over wins: it replaces one not yet taken, and one the flow is checking. */
  offerTransaction(hash: string, verified?: MinedTx): void {
    this.offered = verified ? { hash, verified } : { hash };
  }

  /** A hand-over the flow has not taken yet. */
  get hasOffer(): boolean {
    return this.offered !== undefined;
  }

  takeOffer(): { hash: string; verified?: MinedTx } | undefined {
    const o = this.offered;
    this.offered = undefined;
    return o;
  }

  private ignored(why: string): void {
    this.status.lastError = why;
    this.showDetails();
  }

  private safely(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ignored(`${name} ignored: ${oneLine(err)}`);
    }
  }

  /** Runs an activity call and books its wall time to the API or chain bucket. */
  async timed<T>(bucket: Bucket, name: string, fn: () => Promise<T>): Promise<T> {
    this.status.attempts[name] = (this.status.attempts[name] ?? 0) + 1;
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.status.timings[bucket] += Date.now() - t0;
    }
  }

  /** A step whose retries ran out waits for an operator instead of failing the change. */
  async step<T>(bucket: Bucket, name: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await this.timed(bucket, name, fn);
      } catch (err) {
        if (isFinal(err)) throw err;
        this.status.lastError = oneLine(err);
        await this.awaitOperator(`${name} kept failing: ${this.status.lastError}; signal retry or abort`, ['retry']);
      }
    }
  }

  /** Parks the workflow in a named state until an operator acts, and says which action came. */
  /** `resolved` ends the wait without a person (e.g. the chain shows what the operator was asked for). */
  async awaitOperator(why: string, accept: OperatorWay[], resolved?: () => boolean): Promise<OperatorAction> {
    const resumeTo = this.status.phase;
    this.status.waitingFor = why;
    this.currentWait = { why, accepts: accept };
    this.enter('awaiting_operator');
    const t0 = Date.now();
    this.retryRequested = false;
    const canRetry = accept.includes('retry');
    const canUseTx = accept.includes('useTransaction');
    try {
      await condition(() => (canRetry && this.retryRequested) || (canUseTx && this.offered !== undefined) || resolved?.() === true);
    } finally {
      this.status.timings.operatorMs += Date.now() - t0;
      this.status.waitingFor = undefined;
      this.currentWait = undefined;
    }
    this.enter(resumeTo);
    if (resolved?.() === true) return { kind: 'resolved' };
    if (canUseTx && this.offered !== undefined) return { kind: 'useTransaction', ...this.takeOffer()! };
    this.retryRequested = false;
    return { kind: 'retry' };
  }

  /** Ends the status with its timings; with a result, returns it as the workflow's result. */
  finish(): void;
  finish(result: Omit<UpdateEnvResult, 'timings'>): UpdateEnvResult;
  finish(result?: Omit<UpdateEnvResult, 'timings'>): UpdateEnvResult | void {
    const now = Date.now();
    this.status.timings.finishedAt = new Date(now).toISOString();
    this.status.timings.totalMs = now - this.startedAt;
    if (result) return { ...result, timings: this.status.timings };
  }

  /** The workflow's end after a failure: an abort is reported as such, anything else as it came. */
  failed(err: unknown): Error {
    if (this.abortReason !== undefined) {
      this.enter('aborted');
      this.status.lastError = this.abortReason;
      this.showDetails();
      this.finish();
      return ApplicationFailure.nonRetryable(`update of ${this.status.cvmId} aborted: ${this.abortReason}`, FAILURE.Aborted);
    }
    this.enter('failed');
    this.status.lastError = oneLine(err);
    this.showDetails();
    this.finish();
    return err as Error;
  }
}

export function isFinal(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && FINAL_FAILURES.includes(cause.type ?? '');
}

export function oneLine(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.split('\n')[0]!.slice(0, 300);
}
