import {
  ApplicationFailure,
  CancellationScope,
  condition,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  ActivityFailure,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.ts';
import type { MinedTx, SubmitEnvOutcome } from '../activities/types.ts';
import {
  abortSignal,
  AppIdAttribute,
  CvmIdAttribute,
  retrySignal,
  statusQuery,
  UpdatePhaseAttribute,
  useTransactionSignal,
  type UpdateEnvInput,
  type UpdateEnvResult,
  type UpdatePhase,
  type UpdateStatus,
} from './definitions.ts';
import { REGISTRATION_REVERTED, RegistrationSender, waitForConfirmations, type ChainActivities } from './chain-sender.ts';

type Activities = ReturnType<typeof createActivities>;

/** Failure types that end the workflow at once: the input or the API said no for good. */
const FINAL_FAILURES = ['InvalidInput', 'ApiRejected'];

// Every activity heartbeats while it runs (activities/heartbeat.ts): a dead worker's step
// is retried elsewhere after the heartbeat timeout, not the whole start-to-close.
const HEARTBEAT_TIMEOUT = '10 seconds';

const STEP_RETRY = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 12,
  nonRetryableErrorTypes: FINAL_FAILURES,
};

const api = proxyActivities<Activities>({
  startToCloseTimeout: '45 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: STEP_RETRY,
});

// Polling activities return within maxWaitMs; the timeout leaves room for one slow RPC.
const POLL_SLICE_MS = 20_000;
const pollers = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 12 },
});

const chain: ChainActivities = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: STEP_RETRY,
});

const MAX_PHASE1_ROUNDS = 3;
const MAX_TX_NOT_VERIFIED = 6;

export async function updateCvmEnvWorkflow(input: UpdateEnvInput): Promise<UpdateEnvResult> {
  const startedAt = Date.now();
  const status: UpdateStatus = {
    cvmId: input.cvmId,
    phase: 'validating',
    sentTransactions: [],
    attempts: {},
    timings: { startedAt: new Date(startedAt).toISOString(), apiMs: 0, chainMs: 0, operatorMs: 0, phases: [] },
  };
  let phaseStarted = startedAt;
  // Operator input. Abort cancels whatever runs, in any phase; retry only answers a
  // wait; a transaction handed over early is kept until the flow can use it.
  let retryRequested = false;
  let offeredTx: string | undefined;
  let abortReason: string | undefined;
  const work = new CancellationScope();

  // What an operator looks for first comes first in the UI's query view.
  setHandler(statusQuery, () => {
    const { cvmId, phase, waitingFor, lastError, ...rest } = status;
    return { cvmId, phase, waitingFor, lastError, ...rest };
  });
  setHandler(retrySignal, () => {
    if (status.phase === 'awaiting_operator') retryRequested = true;
  });
  setHandler(abortSignal, (arg) => {
    abortReason ??= arg?.reason || 'aborted by an operator';
    work.cancel();
  });
  setHandler(useTransactionSignal, ({ transactionHash }) => {
    offeredTx = transactionHash;
  });

  const enter = (phase: UpdatePhase) => {
    const now = Date.now();
    if (status.phase !== phase) {
      status.timings.phases.push({ phase: status.phase, ms: now - phaseStarted });
      phaseStarted = now;
    }
    status.phase = phase;
    upsertSearchAttributes([{ key: UpdatePhaseAttribute, value: phase }]);
  };

  /** Runs an activity call and books its wall time to the API or chain bucket. */
  const timed = async <T>(bucket: 'apiMs' | 'chainMs', name: string, fn: () => Promise<T>): Promise<T> => {
    status.attempts[name] = (status.attempts[name] ?? 0) + 1;
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      status.timings[bucket] += Date.now() - t0;
    }
  };

  /** Parks the workflow in a named state until an operator acts, and says which action came. */
  const awaitOperator = async (
    why: string,
    accept: ('retry' | 'useTransaction')[],
  ): Promise<{ kind: 'retry' } | { kind: 'useTransaction'; hash: string }> => {
    const resumeTo = status.phase;
    status.waitingFor = why;
    enter('awaiting_operator');
    const t0 = Date.now();
    retryRequested = false;
    const canRetry = accept.includes('retry');
    const canUseTx = accept.includes('useTransaction');
    try {
      await condition(() => (canRetry && retryRequested) || (canUseTx && offeredTx !== undefined));
    } finally {
      status.timings.operatorMs += Date.now() - t0;
      status.waitingFor = undefined;
    }
    enter(resumeTo);
    if (canUseTx && offeredTx !== undefined) {
      const hash = offeredTx;
      offeredTx = undefined;
      return { kind: 'useTransaction', hash };
    }
    retryRequested = false;
    return { kind: 'retry' };
  };

  /** A step whose retries ran out waits for an operator instead of failing the change. */
  const step = async <T>(bucket: 'apiMs' | 'chainMs', name: string, fn: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await timed(bucket, name, fn);
      } catch (err) {
        if (isFinal(err)) throw err;
        status.lastError = oneLine(err);
        await awaitOperator(`${name} kept failing: ${status.lastError}; signal retry or abort`, ['retry']);
      }
    }
  };

  upsertSearchAttributes([
    { key: CvmIdAttribute, value: input.cvmId },
    { key: UpdatePhaseAttribute, value: status.phase },
  ]);

  try {
    return await work.run(() => run());
  } catch (err) {
    if (abortReason !== undefined) {
      enter('aborted');
      status.lastError = abortReason;
      finish(status, startedAt);
      throw ApplicationFailure.nonRetryable(`update of ${input.cvmId} aborted: ${abortReason}`, 'Aborted');
    }
    enter('failed');
    status.lastError = oneLine(err);
    finish(status, startedAt);
    throw err;
  }

  /** A reverted registration spent its nonce and registered nothing: a person decides to sign again. */
  async function sendRegistration(sender: RegistrationSender): Promise<MinedTx> {
    for (;;) {
      try {
        return await sender.run();
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.type === REGISTRATION_REVERTED)) throw err;
        status.lastError = err.message;
        await awaitOperator(`${err.message}; signal retry to sign a new registration, or abort`, ['retry']);
      }
    }
  }

  async function run(): Promise<UpdateEnvResult> {
    const validated = await timed('apiMs', 'validateInput', () => api.validateInput({ env: input.env, allowedKeys: input.allowedKeys }));

    enter('resolving');
    const target = await step('apiMs', 'resolveCvm', () => api.resolveCvm({ cvmId: input.cvmId }));
    status.appId = target.appId;
    status.kms = target.kms;
    status.chainId = target.chainId;
    upsertSearchAttributes([{ key: AppIdAttribute, value: target.appId }]);

    enter('encrypting');
    const key = await step('apiMs', 'getEncryptionKey', () => api.getEncryptionKey(target));
    // Encrypted once: both phases and every retry send the same ciphertext.
    const { encryptedEnv } = await step('apiMs', 'encryptEnv', () => api.encryptEnv({ env: validated.env, publicKey: key.publicKey }));

    const submit = (extra: { composeHash?: string; transactionHash?: string }) =>
      step('apiMs', extra.transactionHash ? 'phase2' : 'phase1', () =>
        api.submitEnvUpdate({
          cvmId: target.cvmId,
          encryptedEnv,
          envKeys: validated.envKeys,
          requestId: input.requestId,
          ...extra,
        }),
      );

    let accepted: Extract<SubmitEnvOutcome, { kind: 'in_progress' }> | undefined;
    let registration: MinedTx | undefined;
    for (let round = 1; !accepted; round++) {
      enter('phase1');
      const first = await submit({});
      if (first.kind === 'in_progress') {
        accepted = first;
        break;
      }
      if (first.kind !== 'precondition_required') {
        throw ApplicationFailure.nonRetryable(`phase 1 answered ${first.kind}: ${first.message}`, 'ApiRejected');
      }
      status.composeHash = first.composeHash;
      const chainId = first.chainId ?? target.chainId;
      if (chainId === undefined) {
        throw ApplicationFailure.nonRetryable('the API asked for an on-chain registration but named no chain', 'ApiRejected');
      }
      status.chainId = chainId;

      enter('checking');
      const check = await step('apiMs', 'checkComposeHash', () =>
        api.checkComposeHash({
          cvmId: target.cvmId,
          envKeys: validated.envKeys,
          expected: first.composeHash,
          policy: input.composeHashPolicy ?? 'strict',
        }),
      );
      let operatorTx: string | undefined;
      if (!check.matches && check.policy === 'strict') {
        const action = await awaitOperator(
          `compose hash ${first.composeHash} does not match the compose we expect (${check.detail}); ` +
            'retry to check again, useTransaction with a registration you made, or abort',
          ['retry', 'useTransaction'],
        );
        if (action.kind === 'retry') continue;
        if (action.kind === 'useTransaction') operatorTx = action.hash;
      }

      const appId = first.appId || target.appId;
      const pre = await step('chainMs', 'chainPreflight', () => chain.chainPreflight({ chainId, appId, composeHash: first.composeHash }));
      const confirmations = input.confirmations ?? pre.confirmations;
      status.requiredConfirmations = confirmations;

      enter('registering');
      registration = undefined;
      const sender =
        operatorTx === undefined && !pre.existing && pre.signerIsOwner
          ? new RegistrationSender({
              chain,
              status,
              chainId,
              appId,
              composeHash: first.composeHash,
              from: pre.signer,
              stallMs: pre.stallMs,
              timed: (name, fn) => step('chainMs', name, fn),
            })
          : undefined;
      if (operatorTx === undefined && pre.existing) registration = pre.existing;
      else if (sender) registration = await sendRegistration(sender);
      for (;;) {
        if (!registration) {
          let txHash = operatorTx;
          operatorTx = undefined;
          if (!txHash) {
            const action = await awaitOperator(
              pre.signerIsOwner
                ? `register compose hash ${first.composeHash} on app ${appId} and signal useTransaction`
                : `${pre.signer ? `the signer ${pre.signer} is not the owner` : 'the worker has no signer key and cannot act for the owner'} ` +
                    `(${pre.owner}) of app ${appId}: the owner must call ` +
                    `addComposeHash(${first.composeHash}) and signal useTransaction with its hash`,
              ['useTransaction'],
            );
            if (action.kind !== 'useTransaction') continue;
            txHash = action.hash;
          }
          const verdict = await step('chainMs', 'verifyRegistration', () =>
            chain.verifyRegistration({ chainId, appId, composeHash: first.composeHash, transactionHash: txHash }),
          );
          if (!verdict.ok) {
            status.lastError = `transaction ${txHash} does not register the hash: ${verdict.reason}`;
            continue;
          }
          registration = { hash: verdict.hash, blockNumber: verdict.blockNumber, blockHash: verdict.blockHash };
        }
        status.transactionHash = registration.hash;
        status.blockNumber = registration.blockNumber;

        enter('confirming');
        const confirmed = await waitForConfirmations({
          chain,
          status,
          chainId,
          tx: registration,
          confirmations,
          sliceMs: POLL_SLICE_MS,
          timed: (name, fn) => step('chainMs', name, fn),
        });
        if (confirmed) {
          registration = confirmed;
          break;
        }
        // A reorg took the registration out of the chain: our own is sent again from the
        // bytes already signed; someone else's has to be handed over again.
        status.lastError = `registration ${registration.hash} was reorganised out of the chain`;
        enter('registering');
        registration = sender ? await sendRegistration(sender) : undefined;
      }

      let notVerified = 0;
      for (;;) {
        enter('phase2');
        const second = await submit({ composeHash: first.composeHash, transactionHash: registration.hash });
        if (second.kind === 'in_progress') {
          accepted = second;
          break;
        }
        status.lastError = second.kind === 'precondition_required' ? 'phase 2 asked for a registration again' : `${second.kind}: ${second.message}`;
        if (second.kind === 'tx_not_verified' && ++notVerified < MAX_TX_NOT_VERIFIED) {
          // The API's RPC may lag behind ours: give it time.
          await sleep(Math.min(2 ** (notVerified - 1) * 1000, 30_000));
          continue;
        }
        if (second.kind === 'hash_expired' || second.kind === 'precondition_required') break;
        await awaitOperator(`phase 2 was refused (${status.lastError}); signal retry once fixed, or abort`, ['retry']);
        notVerified = 0;
      }
      if (!accepted && round >= MAX_PHASE1_ROUNDS) {
        await awaitOperator(`the compose hash expired ${round} times; signal retry to start phase 1 again`, ['retry']);
      }
    }
    status.correlationId = accepted.correlationId;

    let applied = false;
    if (input.waitForApplied !== false) {
      enter('applying');
      for (;;) {
        const obs = await step('apiMs', 'observeApplied', () =>
          pollers.observeApplied({ cvmId: target.cvmId, correlationId: accepted!.correlationId, maxWaitMs: POLL_SLICE_MS }),
        );
        if (obs.state === 'applied') break;
        if (obs.state === 'failed') {
          status.lastError = obs.message;
          await awaitOperator(`the CVM reported the operation failed: ${obs.message}; signal retry to check again, or abort`, ['retry']);
        }
      }
      applied = true;
    }

    enter('completed');
    return finish(status, startedAt, {
      cvmId: target.cvmId,
      kms: target.kms,
      correlationId: accepted.correlationId,
      composeHash: status.composeHash,
      transactionHash: status.transactionHash,
      blockNumber: status.blockNumber,
      allowedEnvsChanged: accepted.allowedEnvsChanged,
      applied,
    });
  }
}

function finish(status: UpdateStatus, startedAt: number): void;
function finish(status: UpdateStatus, startedAt: number, result: Omit<UpdateEnvResult, 'timings'>): UpdateEnvResult;
function finish(status: UpdateStatus, startedAt: number, result?: Omit<UpdateEnvResult, 'timings'>): UpdateEnvResult | void {
  const now = Date.now();
  status.timings.finishedAt = new Date(now).toISOString();
  status.timings.totalMs = now - startedAt;
  if (result) return { ...result, timings: status.timings };
}

function isFinal(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && FINAL_FAILURES.includes(cause.type ?? '');
}

function oneLine(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.split('\n')[0]!.slice(0, 300);
}
