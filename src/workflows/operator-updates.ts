// retry, abort and useTransaction as Workflow Updates: the caller gets an acceptance or a
// refusal with its reason at once. Validators check shape and state; the useTransaction
// handler checks the transaction on chain before the waiting flow gets it. Only
// ApplicationFailures leave a handler: anything else would fail the workflow task.
import { ApplicationFailure, isCancellation, proxyActivities, setHandler } from '@temporalio/workflow';
import { HandlerUnfinishedPolicy } from '@temporalio/common';
import type { createActivities } from '../activities/index.ts';
import type { MinedTx } from '../activities/types.ts';
import { abortUpdate, retryUpdate, useTransactionUpdate, type OperatorAnswer } from './definitions.ts';
import { parseAbortArg, parseRetryArg, parseTransactionArg } from './operator-input.ts';
import { FAILURE, FINAL_FAILURES } from '../failure-types.ts';
import { oneLine, type UpdateTracker } from './update-tracker.ts';

type Activities = ReturnType<typeof createActivities>;

// The caller waits for the answer: a few quick tries, and a transaction not mined yet is
// answered at once (accepted, checked by the flow once mined) instead of retried here.
const checks = proxyActivities<Activities>({
  startToCloseTimeout: '20 seconds',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '4 seconds',
    maximumAttempts: 4,
    nonRetryableErrorTypes: [...FINAL_FAILURES, FAILURE.RegistrationNotMinedYet],
  },
  summary: "check the operator's registration transaction",
});

function refuse(reason: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(reason, FAILURE.OperatorActionRefused);
}

async function guarded<T>(action: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (isCancellation(err)) throw refuse(`${action}: the change was aborted meanwhile`);
    throw refuse(`${action} could not be taken: ${oneLine(err)}`);
  }
}

function causeType(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown })?.cause;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

export function registerOperatorUpdates(t: UpdateTracker): void {
  const isCurrentRegistration = (hash: string): boolean =>
    t.status.transactionHash !== undefined && t.status.transactionHash.toLowerCase() === hash.toLowerCase();
  const answer = (action: OperatorAnswer['action'], message: string, extra: Partial<OperatorAnswer> = {}): OperatorAnswer => ({
    action,
    phase: t.status.phase,
    message,
    ...extra,
  });

  setHandler(
    retryUpdate,
    (_arg?: unknown) =>
      guarded('retry', () => {
        const why = t.wait?.why ?? '';
        t.requestRetry();
        return answer('retry', `retry accepted; it ran again what waited for: ${why}`);
      }),
    {
      validator: (arg?: unknown) => {
        const parsed = parseRetryArg(arg);
        if (!parsed.ok) throw refuse(parsed.problem);
        if (!t.waitingFor('retry')) throw refuse(t.refusal('retry'));
      },
    },
  );

  setHandler(
    abortUpdate,
    (arg?: unknown) =>
      guarded('abort', () => {
        const parsed = parseAbortArg(arg);
        const before = t.abortReason;
        t.requestAbort(parsed.ok ? parsed.value.reason : undefined);
        const message =
          before !== undefined ? `already being aborted: ${before}` : `abort accepted (${t.abortReason}); nothing further is sent`;
        return answer('abort', message);
      }),
    {
      validator: (arg?: unknown) => {
        const parsed = parseAbortArg(arg);
        if (!parsed.ok) throw refuse(parsed.problem);
        const phase = t.status.phase;
        if (phase === 'completed' || phase === 'failed' || phase === 'aborted')
          throw refuse(`the change has already ended (phase: ${phase})`);
      },
    },
  );

  setHandler(
    useTransactionUpdate,
    (arg?: unknown) =>
      guarded('useTransaction', async () => {
        const parsed = parseTransactionArg(arg);
        if (parsed.ok && isCurrentRegistration(parsed.value)) {
          return answer('useTransaction', `transaction ${parsed.value} is already this change's registration; nothing to do`, {
            transactionHash: t.status.transactionHash!,
            ...(t.status.blockNumber !== undefined ? { blockNumber: t.status.blockNumber } : {}),
          });
        }
        const target = t.registrationTarget;
        if (!parsed.ok || !target) throw refuse(parsed.ok ? t.refusal('useTransaction') : parsed.problem);
        const hash = parsed.value;
        const what = `this transaction does not register compose hash ${target.composeHash} on app ${target.appId}`;
        let verified: MinedTx | undefined;
        let note: string;
        try {
          // In the change's scope: an abort stops the check too.
          const verdict = await t.work.run(() => checks.verifyRegistration({ ...target, transactionHash: hash }));
          if (!verdict.ok) {
            t.status.lastError = `useTransaction ${hash} refused: ${verdict.reason}`;
            t.showDetails();
            throw refuse(`${what}: ${verdict.reason}`);
          }
          verified = { hash: verdict.hash, blockNumber: verdict.blockNumber, blockHash: verdict.blockHash };
          note = `registers compose hash ${target.composeHash} on app ${target.appId} (block ${verdict.blockNumber}); the change goes on`;
        } catch (err) {
          if (err instanceof ApplicationFailure || isCancellation(err)) throw err;
          // Not mined yet, or the RPC failed: the flow checks it, with its own retries.
          note =
            causeType(err) === FAILURE.RegistrationNotMinedYet
              ? 'is not mined yet (or not seen by our RPC); the change checks it once it is mined'
              : `could not be checked now (${oneLine(err)}); the change checks it again`;
        }
        // The chain was asked meanwhile: the wait may have ended, or moved on to another hash.
        if (!t.waitingFor('useTransaction') || t.registrationTarget?.composeHash !== target.composeHash) {
          throw refuse(`the change stopped waiting while the transaction was checked; ${t.refusal('useTransaction')}`);
        }
        t.offerTransaction(hash, verified);
        return answer('useTransaction', `transaction ${hash} accepted: it ${note}`, {
          transactionHash: hash,
          ...(verified ? { blockNumber: verified.blockNumber } : {}),
        });
      }),
    {
      validator: (arg?: unknown) => {
        const parsed = parseTransactionArg(arg);
        if (!parsed.ok) throw refuse(parsed.problem);
        // The chain watch may have found the owner's transaction just before it was handed over.
        if (isCurrentRegistration(parsed.value)) return;
        if (!t.waitingFor('useTransaction')) throw refuse(t.refusal('useTransaction'));
        if (!t.registrationTarget) throw refuse('no registration has been asked for yet');
      },
      unfinishedPolicy: HandlerUnfinishedPolicy.ABANDON,
    },
  );
}
