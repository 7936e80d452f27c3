// The bookkeeping of one update: its status (the `status` query), phase changes (the
// UpdatePhase search attribute), per-step timings and attempts, and the operator's hand
// (retry, abort, useTransaction). The update workflow itself keeps only its story.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import {
  abortSignal,
  CvmIdAttribute,
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
export type OperatorAction = { kind: 'retry' } | { kind: 'useTransaction'; hash: string } | { kind: 'resolved' };

export class UpdateTracker {
  readonly status: UpdateStatus;
  /** Cancelled by an abort: whatever step runs stops. */
  readonly work = new CancellationScope();
  abortReason: string | undefined;
  private phaseStarted: number;
  private retryRequested = false;
  /** A transaction handed over early is kept until the flow can use it. */
  private offeredTx: string | undefined;

  constructor(
    cvmId: string,
    private readonly startedAt = Date.now(),
  ) {
    this.phaseStarted = startedAt;
    this.status = {
      cvmId,
      phase: 'validating',
      sentTransactions: [],
      attempts: {},
      timings: { startedAt: new Date(startedAt).toISOString(), apiMs: 0, chainMs: 0, operatorMs: 0, phases: [] },
    };
    // What an operator looks for first comes first in the UI's query view.
    setHandler(statusQuery, () => {
      const { cvmId: id, phase, waitingFor, lastError, ...rest } = this.status;
      return { cvmId: id, phase, waitingFor, lastError, ...rest };
    });
    setHandler(retrySignal, () => {
      if (this.status.phase === 'awaiting_operator') this.retryRequested = true;
    });
    setHandler(abortSignal, (arg) => {
      this.abortReason ??= arg?.reason || 'aborted by an operator';
      this.work.cancel();
    });
    setHandler(useTransactionSignal, ({ transactionHash }) => {
      this.offeredTx = transactionHash;
    });
    upsertSearchAttributes([
      { key: CvmIdAttribute, value: cvmId },
      { key: UpdatePhaseAttribute, value: this.status.phase },
    ]);
  }

  enter(phase: UpdatePhase): void {
    const now = Date.now();
    if (this.status.phase !== phase) {
      this.status.timings.phases.push({ phase: this.status.phase, ms: now - this.phaseStarted });
      this.phaseStarted = now;
    }
    this.status.phase = phase;
    upsertSearchAttributes([{ key: UpdatePhaseAttribute, value: phase }]);
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
  async awaitOperator(why: string, accept: ('retry' | 'useTransaction')[], resolved?: () => boolean): Promise<OperatorAction> {
    const resumeTo = this.status.phase;
    this.status.waitingFor = why;
    this.enter('awaiting_operator');
    const t0 = Date.now();
    this.retryRequested = false;
    const canRetry = accept.includes('retry');
    const canUseTx = accept.includes('useTransaction');
    try {
      await condition(() => (canRetry && this.retryRequested) || (canUseTx && this.offeredTx !== undefined) || resolved?.() === true);
    } finally {
      this.status.timings.operatorMs += Date.now() - t0;
      this.status.waitingFor = undefined;
    }
    this.enter(resumeTo);
    if (resolved?.() === true) return { kind: 'resolved' };
    if (canUseTx && this.offeredTx !== undefined) {
      const hash = this.offeredTx;
      this.offeredTx = undefined;
      return { kind: 'useTransaction', hash };
    }
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
      this.finish();
      return ApplicationFailure.nonRetryable(`update of ${this.status.cvmId} aborted: ${this.abortReason}`, FAILURE.Aborted);
    }
    this.enter('failed');
    this.status.lastError = oneLine(err);
    this.finish();
    return err as Error;
  }
}

function isFinal(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && FINAL_FAILURES.includes(cause.type ?? '');
}

export function oneLine(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.split('\n')[0]!.slice(0, 300);
}
