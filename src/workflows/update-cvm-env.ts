import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.ts';
import type { ChainPreflight, MinedTx, SubmitEnvOutcome } from '../activities/types.ts';
import { AppIdAttribute, type UpdateEnvInput, type UpdateEnvResult } from './definitions.ts';
import { waitForConfirmations } from './confirmations.ts';
import { ManagedRegistration } from './managed-registration.ts';
import { REGISTRATION_REVERTED, RegistrationSender } from './legacy/registration-sender.ts';
import { FINAL_FAILURES, oneLine, UpdateTracker, type OperatorAction } from './update-tracker.ts';
import { payloadBudgetProblem } from './payload-budget.ts';
import { sealedEnvRef, type SealedEnvRef } from './sealed-env.ts';

type Activities = ReturnType<typeof createActivities>;

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

const API_OPTIONS = {
  startToCloseTimeout: '45 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: STEP_RETRY,
} as const;
const api = proxyActivities<Activities>(API_OPTIONS);

// Polling activities return within maxWaitMs; the timeout leaves room for one slow RPC.
const POLL_SLICE_MS = 20_000;
const pollers = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 12 },
});

const chain = proxyActivities<Activities>({
  startToCloseTimeout: '60 seconds',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: STEP_RETRY,
});

/**
 * New registrations go through the per-signer transaction manager; updates started before
 * it replay through the legacy sender. Remove that branch (deprecatePatch) once none is open.
 */
const SIGNER_MANAGER_PATCH = 'signer-manager';

/** While waiting for an owner who signs elsewhere, watch the chain and go on when the hash is allowed. */
const OWNER_WATCH_PATCH = 'owner-watch';

/** An input whose payloads would not fit Temporal's limit fails at once, with the numbers. */
const PAYLOAD_BUDGET_PATCH = 'payload-budget';

/** The ciphertext is in history once, as binary; submits read it back by reference. */
const SEALED_ENV_PATCH = 'sealed-env';

const MAX_PHASE1_ROUNDS = 3;
const MAX_TX_NOT_VERIFIED = 6;

/**
 * validate → resolve → encrypt → phase 1 → (compose-hash check → registration → confirmations
 * → phase 2) → applied. Every arrow is an activity; what retries cannot cure waits for an
 * operator in `awaiting_operator`.
 */
export async function updateCvmEnvWorkflow(input: UpdateEnvInput): Promise<UpdateEnvResult> {
  const t = new UpdateTracker(input.cvmId);
  const { status } = t;
  const managed = new ManagedRegistration(t, chain);
  let seals = 0;
  try {
    return await t.work.run(() => run());
  } catch (err) {
    if (t.abortReason !== undefined) await managed.withdraw();
    throw t.failed(err);
  }

  /** Our registration through the signer's manager, confirmed; undefined: an operator's turn. */
  async function registerWithManager(
    ask: { chainId: number; appId: string; composeHash: string; confirmations: number },
    pre: ChainPreflight,
  ): Promise<MinedTx | undefined> {
    for (;;) {
      const answer = await managed.obtain({
        ...ask,
        signer: pre.signer,
        ...(pre.blockNumber !== undefined ? { notAllowedAtBlock: pre.blockNumber } : {}),
      });
      if (answer.kind === 'confirmed') {
        status.confirmations = answer.confirmations;
        return answer.tx;
      }
      if (answer.kind === 'already_allowed') {
        // Allowed since our preflight, by someone else: use that registration.
        const again = await t.step('chainMs', 'chainPreflight', () => chain.chainPreflight(ask));
        if (again.existing) return again.existing;
        status.lastError = `compose hash ${ask.composeHash} is allowed on app ${ask.appId} but its registration was not found`;
        return undefined;
      }
      status.lastError = answer.reason;
      await t.awaitOperator(`the registration failed: ${answer.reason}; signal retry to ask the signer again, or abort`, ['retry']);
    }
  }

  /**
   * Waits for the owner's registration: an operator's useTransaction, or the chain showing the
   * hash allowed with its ComposeHashAdded, whoever sent it (a Safe, a timelock, a relayer).
   */
  async function awaitOwner(
    why: string,
    ask: { chainId: number; appId: string; composeHash: string; fromBlock: number },
  ): Promise<OperatorAction | { kind: 'onChain'; tx: MinedTx }> {
    status.ownerProposal = await t.step('apiMs', 'ownerRegistrationProposal', () => api.ownerRegistrationProposal(ask));
    let seen: MinedTx | undefined;
    const watch = new CancellationScope();
    const watching = watch
      .run(async () => {
        while (!seen) {
          const r = await pollers.watchOwnerRegistration({ ...ask, maxWaitMs: POLL_SLICE_MS });
          if (r.state === 'registered') seen = r.tx;
        }
      })
      .catch((err: unknown) => {
        // Retries ran out: the operator's hand-over still works; say why the watch stopped.
        if (!isCancellation(err)) status.lastError = `watching the chain for the owner's registration stopped: ${oneLine(err)}`;
      });
    const action = await t.awaitOperator(why, ['useTransaction'], () => seen !== undefined);
    watch.cancel();
    await watching;
    status.ownerProposal = undefined;
    return seen ? { kind: 'onChain', tx: seen } : action;
  }

  /** A reverted legacy registration spent its nonce and registered nothing: a person decides. */
  async function sendLegacy(sender: RegistrationSender): Promise<MinedTx> {
    for (;;) {
      try {
        return await sender.run();
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.type === REGISTRATION_REVERTED)) throw err;
        status.lastError = err.message;
        await t.awaitOperator(`${err.message}; signal retry to sign a new registration, or abort`, ['retry']);
      }
    }
  }

  /** Encrypts once, under an activity id the submits find again in this run's history. */
  async function seal(env: { key: string; value: string }[], publicKey: string): Promise<SealedEnvRef> {
    const activityId = `seal-env-${++seals}`;
    const sealed = await proxyActivities<Activities>({ ...API_OPTIONS, activityId }).sealEnv({ env, publicKey });
    return sealedEnvRef(sealed, { runId: workflowInfo().runId, activityId });
  }

  async function run(): Promise<UpdateEnvResult> {
    if (patched(PAYLOAD_BUDGET_PATCH)) {
      const problem = payloadBudgetProblem(input);
      if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
    }
    const validated = await t.timed('apiMs', 'validateInput', () => api.validateInput({ env: input.env, allowedKeys: input.allowedKeys }));

    t.enter('resolving');
    const target = await t.step('apiMs', 'resolveCvm', () => api.resolveCvm({ cvmId: input.cvmId }));
    status.appId = target.appId;
    status.kms = target.kms;
    status.chainId = target.chainId;
    upsertSearchAttributes([{ key: AppIdAttribute, value: target.appId }]);

    t.enter('encrypting');
    const key = await t.step('apiMs', 'getEncryptionKey', () => api.getEncryptionKey(target));
    // Encrypted once: both phases and every retry send the same ciphertext.
    const ciphertext = patched(SEALED_ENV_PATCH)
      ? { sealedEnv: await t.step('apiMs', 'encryptEnv', () => seal(validated.env, key.publicKey)) }
      : await t.step('apiMs', 'encryptEnv', () => api.encryptEnv({ env: validated.env, publicKey: key.publicKey }));

    const submit = (extra: { composeHash?: string; transactionHash?: string }) =>
      t.step('apiMs', extra.transactionHash ? 'phase2' : 'phase1', () =>
        api.submitEnvUpdate({
          cvmId: target.cvmId,
          ...ciphertext,
          envKeys: validated.envKeys,
          requestId: input.requestId,
          ...extra,
        }),
      );

    let accepted: Extract<SubmitEnvOutcome, { kind: 'in_progress' }> | undefined;
    let registration: MinedTx | undefined;
    for (let round = 1; !accepted; round++) {
      t.enter('phase1');
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

      t.enter('checking');
      const check = await t.step('apiMs', 'checkComposeHash', () =>
        api.checkComposeHash({
          cvmId: target.cvmId,
          envKeys: validated.envKeys,
          expected: first.composeHash,
          policy: input.composeHashPolicy ?? 'strict',
        }),
      );
      let operatorTx: string | undefined;
      if (!check.matches && check.policy === 'strict') {
        const action = await t.awaitOperator(
          `compose hash ${first.composeHash} does not match the compose we expect (${check.detail}); ` +
            'retry to check again, useTransaction with a registration you made, or abort',
          ['retry', 'useTransaction'],
        );
        if (action.kind === 'retry') continue;
        if (action.kind === 'useTransaction') operatorTx = action.hash;
      }

      const appId = first.appId || target.appId;
      const pre = await t.step('chainMs', 'chainPreflight', () => chain.chainPreflight({ chainId, appId, composeHash: first.composeHash }));
      const confirmations = input.confirmations ?? pre.confirmations;
      status.requiredConfirmations = confirmations;

      t.enter('registering');
      registration = undefined;
      const ours = operatorTx === undefined && !pre.existing && pre.signerIsOwner;
      const viaManager = ours && patched(SIGNER_MANAGER_PATCH);
      const sender =
        ours && !viaManager
          ? new RegistrationSender({
              chain,
              status,
              chainId,
              appId,
              composeHash: first.composeHash,
              from: pre.signer,
              stallMs: pre.stallMs,
              timed: (name, fn) => t.step('chainMs', name, fn),
            })
          : undefined;
      const ask = { chainId, appId, composeHash: first.composeHash, confirmations };
      let managedTx: MinedTx | undefined;
      if (operatorTx === undefined && pre.existing) registration = pre.existing;
      else if (viaManager) registration = managedTx = await registerWithManager(ask, pre);
      else if (sender) registration = await sendLegacy(sender);
      for (;;) {
        if (!registration) {
          let txHash = operatorTx;
          operatorTx = undefined;
          if (!txHash) {
            const why = pre.signerIsOwner
              ? `register compose hash ${first.composeHash} on app ${appId} and signal useTransaction`
              : `${pre.signer ? `the signer ${pre.signer} is not the owner` : 'the worker has no signer key and cannot act for the owner'} ` +
                `(${pre.owner}) of app ${appId}: the owner must call ` +
                `addComposeHash(${first.composeHash}) and signal useTransaction with its hash`;
            // Since 'owner-watch': the chain is watched meanwhile; a registration by anyone ends the wait.
            const action =
              !pre.signerIsOwner && patched(OWNER_WATCH_PATCH)
                ? await awaitOwner(why, { chainId, appId, composeHash: first.composeHash, fromBlock: pre.blockNumber ?? 0 })
                : await t.awaitOperator(why, ['useTransaction']);
            if (action.kind === 'onChain') {
              // Found by the watch: the app allows the hash and its ComposeHashAdded names the tx.
              registration = action.tx;
            } else if (action.kind !== 'useTransaction') {
              continue;
            } else {
              txHash = action.hash;
            }
          }
          if (!registration) {
            const verdict = await t.step('chainMs', 'verifyRegistration', () =>
              chain.verifyRegistration({ chainId, appId, composeHash: first.composeHash, transactionHash: txHash! }),
            );
            if (!verdict.ok) {
              status.lastError = `transaction ${txHash} does not register the hash: ${verdict.reason}`;
              continue;
            }
            registration = { hash: verdict.hash, blockNumber: verdict.blockNumber, blockHash: verdict.blockHash };
          }
        }
        status.transactionHash = registration.hash;
        status.blockNumber = registration.blockNumber;

        t.enter('confirming');
        // The manager answers at our depth, just checked canonical: no second wait.
        if (registration === managedTx) break;
        const confirmed = await waitForConfirmations({
          chain,
          status,
          chainId,
          tx: registration,
          confirmations,
          sliceMs: POLL_SLICE_MS,
          timed: (name, fn) => t.step('chainMs', name, fn),
        });
        if (confirmed) {
          registration = confirmed;
          break;
        }
        // A reorg took the registration out of the chain: our own is sent again from the
        // bytes already signed; someone else's has to be handed over again.
        status.lastError = `registration ${registration.hash} was reorganised out of the chain`;
        t.enter('registering');
        registration = sender ? await sendLegacy(sender) : viaManager ? (managedTx = await registerWithManager(ask, pre)) : undefined;
      }

      let notVerified = 0;
      for (;;) {
        t.enter('phase2');
        const second = await submit({ composeHash: first.composeHash, transactionHash: registration.hash });
        if (second.kind === 'in_progress') {
          accepted = second;
          break;
        }
        status.lastError =
          second.kind === 'precondition_required' ? 'phase 2 asked for a registration again' : `${second.kind}: ${second.message}`;
        if (second.kind === 'tx_not_verified' && ++notVerified < MAX_TX_NOT_VERIFIED) {
          // The API's RPC may lag behind ours: give it time.
          await sleep(Math.min(2 ** (notVerified - 1) * 1000, 30_000));
          continue;
        }
        if (second.kind === 'hash_expired' || second.kind === 'precondition_required') break;
        await t.awaitOperator(`phase 2 was refused (${status.lastError}); signal retry once fixed, or abort`, ['retry']);
        notVerified = 0;
      }
      if (!accepted && round >= MAX_PHASE1_ROUNDS) {
        await t.awaitOperator(`the compose hash expired ${round} times; signal retry to start phase 1 again`, ['retry']);
      }
    }
    const done = accepted!;
    status.correlationId = done.correlationId;

    let applied = false;
    if (input.waitForApplied !== false) {
      t.enter('applying');
      for (;;) {
        const obs = await t.step('apiMs', 'observeApplied', () =>
          pollers.observeApplied({ cvmId: target.cvmId, correlationId: done.correlationId, maxWaitMs: POLL_SLICE_MS }),
        );
        if (obs.state === 'applied') break;
        if (obs.state === 'failed') {
          status.lastError = obs.message;
          await t.awaitOperator(`the CVM reported the operation failed: ${obs.message}; signal retry to check again, or abort`, ['retry']);
        }
      }
      applied = true;
    }

    t.enter('completed');
    return t.finish({
      cvmId: target.cvmId,
      kms: target.kms,
      correlationId: done.correlationId,
      composeHash: status.composeHash,
      transactionHash: status.transactionHash,
      blockNumber: status.blockNumber,
      allowedEnvsChanged: done.allowedEnvsChanged,
      applied,
    });
  }
}
