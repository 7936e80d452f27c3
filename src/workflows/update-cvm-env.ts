import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  makeContinueAsNewFunc,
  proxyActivities,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.ts';
import type { ChainPreflight, CvmTarget, MinedTx, SubmitEnvOutcome } from '../activities/types.ts';
import {
  AppIdAttribute,
  RequestIdAttribute,
  type UpdateEnvInput,
  type UpdateEnvResult,
  type ApplyResume,
  type UpdateResume,
} from './definitions.ts';
import { historyBudgetSpent, isContinueAsNew, pauseBetweenSlices, REGISTRATION_CONTINUES_PATCH } from './bounded-wait.ts';
import type { RegistrationResume, RegistrationRound, Submission } from './registration-round.ts';
import { payloadBudgetProblem } from './payload-budget.ts';
import { beginPatches, since } from './patch-baseline.ts';
import { sealedEnvRef, type SealedEnvRef } from './sealed-env.ts';
import { waitForConfirmations } from './confirmations.ts';
import { ManagedRegistration } from './managed-registration.ts';
import { REGISTRATION_REVERTED, RegistrationSender } from './legacy/registration-sender.ts';
import { checkUpdateEnvInput, describeInputProblems, type CheckedUpdateInput } from './input-schema.ts';
import { FAILURE } from '../failure-types.ts';
import { STEP_RETRY } from './step-retry.ts';
import { apiReads, chainReads, readVia } from './local-reads.ts';
import { isFinal, oneLine, UpdateTracker, type OperatorAction, type RegistrationTarget } from './update-tracker.ts';
import { registerOperatorUpdates } from './operator-updates.ts';

type Activities = ReturnType<typeof createActivities>;

// Every activity task heartbeats while it runs (activities/heartbeat.ts): a dead worker's step
// is retried elsewhere after the heartbeat timeout, not the whole start-to-close.
const HEARTBEAT_TIMEOUT = '10 seconds';

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

// The quick reads: local activities in runs since 'local-reads', activity tasks before. Asked at
// each read, where the patch was first asked when those runs were recorded.
const apiRead = () => readVia(api, apiReads);
const chainRead = () => readVia(chain, chainReads);

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

/** Before phase 1: a requestId another run of this workflow id carried ends the run, nothing sent. */
const REQUEST_GUARD_PATCH = 'request-guard';

/**
 * A transaction handed over while another is checked replaces it, and a failed check can be
 * answered with a corrected hash. Before it, a retry checked the same hash again.
 */
const NEWEST_TX_PATCH = 'newest-tx-wins';

/** A reorged registration that is not ours is looked for on chain again before anyone is asked. */
const REFIND_REGISTRATION_PATCH = 'refind-registration';

/** The input is checked in the workflow, before anything is scheduled; earlier runs checked it in an activity. */
const INPUT_SCHEMA_PATCH = 'input-schema';

/** After a reorg took someone else's registration out: looks at 0, 1, 2, 4, 8, 16 s (~31 s in all). */
const REFIND_LOOKS = 6;
const REFIND_FIRST_PAUSE_MS = 1_000;

const MAX_PHASE1_ROUNDS = 3;
const MAX_TX_NOT_VERIFIED = 6;

/**
 * validate → resolve → encrypt → phase 1 → (compose-hash check → registration → confirmations
 * → phase 2) → applied. Every arrow is an activity; what retries cannot cure waits for an
 * operator in `awaiting_operator`.
 */
export async function updateCvmEnvWorkflow(input: UpdateEnvInput): Promise<UpdateEnvResult> {
  // First thing, whoever started it: a bad input fails before any search attribute or activity.
  // A resumed run is this workflow's own continuation of a checked input. No input at all, or a
  // `resume` in a run that did not continue as new (a forged one), is checked too: reading past
  // it would throw a TypeError, which fails the workflow task again on every attempt.
  // Before anything else asks a patch: whether this run began under the baseline is fixed here.
  const compact = beginPatches();
  const given: Partial<UpdateEnvInput> | null | undefined = input;
  const resumed = given?.resume !== undefined && workflowInfo().continuedFromExecutionRunId !== undefined;
  const checked = !resumed && since(INPUT_SCHEMA_PATCH) ? checkedInput(input) : undefined;
  // Under the baseline the first write of the search attributes carries the requestId too.
  const t = new UpdateTracker(input.cvmId, input.resume?.status, {
    compact,
    ...(compact && !resumed && checked?.requestId ? { requestId: checked.requestId } : {}),
  });
  const { status } = t;
  const managed = new ManagedRegistration(t, chain);
  let seals = 0;
  registerOperatorUpdates(t);
  try {
    const resume = input.resume;
    return await t.work.run(() =>
      !resume ? run() : resume.at === 'applying' ? settle(resume.target, resume, resume.slices) : rounds(resume.round.target, resume),
    );
  } catch (err) {
    if (isContinueAsNew(err)) throw err;
    if (t.abortReason !== undefined) await managed.withdraw();
    throw t.failed(err);
  }

  /** Refuses a requestId that an earlier run of this CVM carried, whoever started this one. */
  async function guardRequest(requestId: string): Promise<void> {
    if (!compact) upsertSearchAttributes([{ key: RequestIdAttribute, value: requestId }]);
    const { workflowId, runId } = workflowInfo();
    const seen = await t.step('apiMs', 'findEarlierRequest', () => apiRead().findEarlierRequest({ workflowId, runId, requestId }));
    if (seen.found) {
      throw ApplicationFailure.nonRetryable(
        `${seen.message}; nothing was sent for this run: start a new change with a new requestId`,
        FAILURE.DuplicateRequest,
      );
    }
  }

  /** After the API accepted the change: wait until the CVM applied it, then the result. */
  async function settle(
    target: ApplyResume['target'],
    done: Pick<ApplyResume, 'correlationId' | 'allowedEnvsChanged'>,
    slicesDone = 0,
  ): Promise<UpdateEnvResult> {
    status.correlationId = done.correlationId;

    let applied = false;
    if (input.waitForApplied !== false) {
      t.enter('applying');
      for (let slices = slicesDone; ;) {
        const obs = await t.step('apiMs', 'observeApplied', () =>
          pollers.observeApplied({ cvmId: target.cvmId, correlationId: done.correlationId, maxWaitMs: POLL_SLICE_MS }),
        );
        if (obs.state === 'applied') break;
        if (obs.state === 'failed') {
          status.lastError = obs.message;
          await t.awaitOperator(`the CVM reported the operation failed: ${obs.message}; signal retry to check again, or abort`, ['retry']);
          slices = 0;
          continue;
        }
        await pauseBetweenSlices(++slices);
        if (historyBudgetSpent()) {
          await continueWith({
            at: 'applying',
            target,
            correlationId: done.correlationId,
            allowedEnvsChanged: done.allowedEnvsChanged,
            slices,
            status,
          });
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

  /** The same change in a new run with a short history; the env is not needed any more. */
  async function continueWith(resume: UpdateResume): Promise<never> {
    // An operator's Update being answered finishes in this run, not lost across the boundary.
    await condition(allHandlersFinished);
    const { env: _env, allowedKeys: _keys, resume: _previous, ...rest } = input;
    const info = workflowInfo();
    return await makeContinueAsNewFunc<typeof updateCvmEnvWorkflow>({
      ...(info.memo ? { memo: info.memo } : {}),
      typedSearchAttributes: info.typedSearchAttributes,
    })({ ...rest, env: [], resume });
  }

  /** The registration wait goes on in a new run, from this round's state (no plaintext in it). */
  async function continueRegistration(
    r: RegistrationRound,
    at: RegistrationResume['at'],
    slices: number,
    registration?: MinedTx,
  ): Promise<never> {
    return continueWith({ at, round: r, slices, status, ...(registration ? { registration } : {}) });
  }

  /** Our registration through the signer's manager, confirmed; undefined: an operator's turn. */
  async function registerWithManager(
    ask: { chainId: number; appId: string; composeHash: string; confirmations: number },
    pre: ChainPreflight,
    r?: RegistrationRound,
    asked = 0,
  ): Promise<MinedTx | undefined> {
    for (;;) {
      const answer = await managed.obtain(
        {
          ...ask,
          signer: pre.signer,
          ...(pre.blockNumber !== undefined ? { notAllowedAtBlock: pre.blockNumber } : {}),
        },
        asked,
      );
      asked = 0;
      if (answer.kind === 'continue') {
        // Only asked with a round (new code); an older run's history never gets here.
        if (!r) throw new Error('the manager wait asked to continue as new without a round to carry');
        return await continueRegistration(r, 'managed', answer.asked);
      }
      if (answer.kind === 'confirmed') {
        status.confirmations = answer.confirmations;
        return answer.tx;
      }
      if (answer.kind === 'already_allowed') {
        // Allowed since our preflight, by someone else: use that registration.
        const again = await t.step('chainMs', 'chainPreflight', () => chainRead().chainPreflight(ask));
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
    firstSlice = 1,
  ): Promise<OperatorAction | { kind: 'onChain'; tx: MinedTx } | { kind: 'continue'; slices: number }> {
    status.ownerProposal = await t.step('apiMs', 'ownerRegistrationProposal', () => api.ownerRegistrationProposal(ask));
    let seen: MinedTx | undefined;
    // An owner may sign days later: past the budget the wait ends here and goes on in a new run.
    let continueAt: number | undefined;
    const watch = new CancellationScope();
    const watching = watch
      .run(async () => {
        for (let slices = firstSlice; !seen; slices++) {
          const r = await pollers.watchOwnerRegistration({ ...ask, maxWaitMs: POLL_SLICE_MS });
          if (r.state === 'registered') seen = r.tx;
          else {
            await pauseBetweenSlices(slices);
            // Not while an operator's hand-over is being checked: it is answered in this run.
            if (allHandlersFinished() && historyBudgetSpent(REGISTRATION_CONTINUES_PATCH)) {
              continueAt = slices + 1;
              return;
            }
          }
        }
      })
      .catch((err: unknown) => {
        // Retries ran out: the operator's hand-over still works; say why the watch stopped.
        if (!isCancellation(err)) status.lastError = `watching the chain for the owner's registration stopped: ${oneLine(err)}`;
      });
    const action = await t.awaitOperator(why, ['useTransaction'], () => seen !== undefined || continueAt !== undefined);
    watch.cancel();
    await watching;
    status.ownerProposal = undefined;
    if (seen) return { kind: 'onChain', tx: seen };
    // A hand-over that came with the end of the budget is used here, not lost across runs.
    if (action.kind === 'resolved' && t.hasOffer) return { kind: 'useTransaction', ...t.takeOffer()! };
    if (action.kind === 'resolved' && continueAt !== undefined) return { kind: 'continue', slices: continueAt };
    return action;
  }

  /** Checks a handed-over transaction; the newest hand-over wins, even while one is checked. */
  async function checkHandedOver(
    first: string,
    target: RegistrationTarget,
  ): Promise<{ ok: true; tx: MinedTx } | { ok: false; hash: string; reason: string }> {
    const verify = (hash: string) => chainRead().verifyRegistration({ ...target, transactionHash: hash });
    if (!since(NEWEST_TX_PATCH)) {
      const v = await t.step('chainMs', 'verifyRegistration', () => verify(first));
      return v.ok
        ? { ok: true, tx: { hash: v.hash, blockNumber: v.blockNumber, blockHash: v.blockHash } }
        : { ok: false, hash: first, reason: v.reason };
    }
    let hash = first;
    t.checkingTransaction = true;
    try {
      for (;;) {
        const scope = new CancellationScope();
        const checked = scope.run(() => t.timed('chainMs', 'verifyRegistration', () => verify(hash)));
        const newer = scope.run(() => condition(() => t.hasOffer));
        const outcome = await Promise.race([
          checked.then(
            (v) => ({ kind: 'checked' as const, v }),
            (err: unknown) => ({ kind: 'failed' as const, err }),
          ),
          // Cancelled with the scope once the check ends first: then it never wins.
          newer.then(
            () => ({ kind: 'newer' as const }),
            () => new Promise<never>(() => {}),
          ),
        ]);
        scope.cancel();
        let next: { hash: string; verified?: MinedTx } | undefined;
        if (outcome.kind === 'checked') {
          const v = outcome.v;
          if (v.ok) return { ok: true, tx: { hash: v.hash, blockNumber: v.blockNumber, blockHash: v.blockHash } };
          return { ok: false, hash, reason: v.reason };
        } else if (outcome.kind === 'newer') {
          next = t.takeOffer();
        } else {
          if (isCancellation(outcome.err) || isFinal(outcome.err)) throw outcome.err;
          status.lastError = oneLine(outcome.err);
          const action = await t.awaitOperator(
            `checking transaction ${hash} kept failing: ${status.lastError}; retry to check it again, useTransaction with a corrected hash, or abort`,
            ['retry', 'useTransaction'],
          );
          if (action.kind === 'useTransaction') next = action;
        }
        if (next?.verified) return { ok: true, tx: next.verified };
        if (next) hash = next.hash;
      }
    } finally {
      t.checkingTransaction = false;
    }
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
    if (since(PAYLOAD_BUDGET_PATCH)) {
      const problem = payloadBudgetProblem(input);
      if (problem) throw ApplicationFailure.nonRetryable(problem, FAILURE.InvalidInput);
    }
    const validated =
      checked ?? (await t.timed('apiMs', 'validateInput', () => api.validateInput({ env: input.env, allowedKeys: input.allowedKeys })));
    if (input.requestId && since(REQUEST_GUARD_PATCH)) await guardRequest(input.requestId);

    t.enter('resolving');
    const target = await t.step('apiMs', 'resolveCvm', () => apiRead().resolveCvm({ cvmId: input.cvmId }));
    status.appId = target.appId;
    status.kms = target.kms;
    status.chainId = target.chainId;
    upsertSearchAttributes([{ key: AppIdAttribute, value: target.appId }]);

    t.enter('encrypting');
    const key = await t.step('apiMs', 'getEncryptionKey', () => apiRead().getEncryptionKey(target));
    // Encrypted once: both phases and every retry send the same ciphertext. Since 'sealed-env'
    // it is in history once, and the submits (and any continued run) carry only its reference.
    const ciphertext = since(SEALED_ENV_PATCH)
      ? { sealedEnv: await t.step('apiMs', 'encryptEnv', () => seal(validated.env, key.publicKey)) }
      : await t.step('apiMs', 'encryptEnv', () => api.encryptEnv({ env: validated.env, publicKey: key.publicKey }));
    return rounds(target, { cvmId: target.cvmId, ...ciphertext, envKeys: validated.envKeys, requestId: input.requestId });
  }

  function submit(base: Submission, extra: { composeHash?: string; transactionHash?: string }) {
    return t.step('apiMs', extra.transactionHash ? 'phase2' : 'phase1', () =>
      api.submitEnvUpdate.executeWithOptions(
        {
          summary: extra.transactionHash
            ? `phase 2: submit the env with registration ${extra.transactionHash}`
            : 'phase 1: submit the encrypted env',
        },
        [{ ...base, ...extra }],
      ),
    );
  }

  /**
   * Phase 1 until the API accepts the change, registering the compose hash it asks for and
   * sending phase 2. `resumed`: a registration wait an earlier run of this change handed over.
   */
  async function rounds(target: CvmTarget, base: Submission | RegistrationResume): Promise<UpdateEnvResult> {
    const resumed = 'at' in base ? base : undefined;
    const submission = resumed ? resumed.round.submission : (base as Submission);
    let accepted: Extract<SubmitEnvOutcome, { kind: 'in_progress' }> | undefined;
    for (let round = resumed?.round.round ?? 1; !accepted; round++) {
      let r: RegistrationRound;
      let registration: MinedTx;
      if (resumed && round === resumed.round.round) {
        r = resumed.round;
        t.registrationTarget = { chainId: r.chainId, appId: r.appId, composeHash: r.composeHash };
        registration = await registerAndConfirm(r, resumed);
      } else {
        t.enter('phase1');
        const first = await submit(submission, {});
        if (first.kind === 'in_progress') {
          accepted = first;
          break;
        }
        if (first.kind !== 'precondition_required') {
          throw ApplicationFailure.nonRetryable(`phase 1 answered ${first.kind}: ${first.message}`, FAILURE.ApiRejected);
        }
        status.composeHash = first.composeHash;
        const chainId = first.chainId ?? target.chainId;
        if (chainId === undefined) {
          throw ApplicationFailure.nonRetryable('the API asked for an on-chain registration but named no chain', FAILURE.ApiRejected);
        }
        status.chainId = chainId;
        t.registrationTarget = { chainId, appId: first.appId || target.appId, composeHash: first.composeHash };

        t.enter('checking');
        const check = await t.step('apiMs', 'checkComposeHash', () =>
          apiRead().checkComposeHash({
            cvmId: target.cvmId,
            envKeys: submission.envKeys,
            expected: first.composeHash,
            policy: input.composeHashPolicy ?? 'strict',
          }),
        );
        let operatorTx: string | undefined;
        let operatorVerified: MinedTx | undefined;
        if (!check.matches && check.policy === 'strict') {
          const action = await t.awaitOperator(
            `compose hash ${first.composeHash} does not match the compose we expect (${check.detail}); ` +
              'retry to check again, useTransaction with a registration you made, or abort',
            ['retry', 'useTransaction'],
          );
          if (action.kind === 'retry') continue;
          if (action.kind === 'useTransaction') {
            operatorTx = action.hash;
            operatorVerified = action.verified;
          }
        }

        const appId = first.appId || target.appId;
        const pre = await t.step('chainMs', 'chainPreflight', () =>
          chainRead().chainPreflight({ chainId, appId, composeHash: first.composeHash }),
        );
        const confirmations = input.confirmations ?? pre.confirmations;
        status.requiredConfirmations = confirmations;

        t.enter('registering');
        const ours = operatorTx === undefined && !pre.existing && pre.signerIsOwner;
        r = { target, submission, round, chainId, appId, composeHash: first.composeHash, pre, confirmations, ours };
        registration = await registerAndConfirm(r, { operatorTx, operatorVerified });
      }

      let notVerified = 0;
      for (;;) {
        t.enter('phase2');
        const second = await submit(submission, { composeHash: r.composeHash, transactionHash: registration.hash });
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
    return settle(target, accepted);
  }

  /**
   * The registration phase 1 asked for, at its depth: one that exists, an operator's, ours
   * through the signer's manager, or the owner's. Called in a continued run with where the
   * earlier run's wait stood.
   */
  async function registerAndConfirm(
    r: RegistrationRound,
    from: { operatorTx: string | undefined; operatorVerified: MinedTx | undefined } | RegistrationResume,
  ): Promise<MinedTx> {
    const { chainId, appId, composeHash, pre, confirmations } = r;
    const resumed = 'at' in from ? from : undefined;
    let operatorTx = resumed ? undefined : (from as { operatorTx: string | undefined }).operatorTx;
    const viaManager = r.ours && since(SIGNER_MANAGER_PATCH);
    const sender =
      r.ours && !viaManager
        ? new RegistrationSender({
            chain,
            status,
            chainId,
            appId,
            composeHash,
            from: pre.signer,
            stallMs: pre.stallMs,
            timed: (name, fn) => t.step('chainMs', name, fn),
          })
        : undefined;
    const ask = { chainId, appId, composeHash, confirmations };
    let managedTx: MinedTx | undefined;
    let registration: MinedTx | undefined;
    // Where a continued run's wait stands: the pauses and re-asks go on growing from there.
    let ownerSlice = resumed?.at === 'owner' ? resumed.slices : 1;
    let confirmSlice = 1;
    if (!resumed) {
      const { operatorVerified } = from as { operatorVerified: MinedTx | undefined };
      if (operatorTx === undefined && pre.existing) registration = pre.existing;
      else if (operatorVerified) registration = operatorVerified;
      else if (viaManager) registration = managedTx = await registerWithManager(ask, pre, r);
      else if (sender) registration = await sendLegacy(sender);
    } else if (resumed.at === 'managed') {
      registration = managedTx = await registerWithManager(ask, pre, r, resumed.slices);
    } else if (resumed.at === 'confirming' && resumed.registration) {
      registration = resumed.registration;
      confirmSlice = resumed.slices;
    }
    for (;;) {
      if (!registration) {
        let txHash = operatorTx;
        operatorTx = undefined;
        if (!txHash) {
          const why = pre.signerIsOwner
            ? `register compose hash ${composeHash} on app ${appId} and signal useTransaction`
            : `${pre.signer ? `the signer ${pre.signer} is not the owner` : 'the worker has no signer key and cannot act for the owner'} ` +
              `(${pre.owner}) of app ${appId}: the owner must call ` +
              `addComposeHash(${composeHash}) and signal useTransaction with its hash`;
          // Since 'owner-watch': the chain is watched meanwhile; a registration by anyone ends the wait.
          const action =
            !pre.signerIsOwner && since(OWNER_WATCH_PATCH)
              ? await awaitOwner(why, { chainId, appId, composeHash, fromBlock: pre.blockNumber ?? 0 }, ownerSlice)
              : await t.awaitOperator(why, ['useTransaction']);
          ownerSlice = 1;
          if (action.kind === 'continue') return await continueRegistration(r, 'owner', action.slices);
          if (action.kind === 'onChain') {
            // Found by the watch: the app allows the hash and its ComposeHashAdded names the tx.
            registration = action.tx;
          } else if (action.kind !== 'useTransaction') {
            continue;
          } else if (action.verified) {
            // Checked on chain by the useTransaction update before it was accepted.
            registration = action.verified;
          } else {
            txHash = action.hash;
          }
        }
        if (!registration) {
          const verdict = await checkHandedOver(txHash!, { chainId, appId, composeHash });
          if (!verdict.ok) {
            status.lastError = `transaction ${verdict.hash} does not register the hash: ${verdict.reason}`;
            continue;
          }
          registration = verdict.tx;
        }
      }
      status.transactionHash = registration.hash;
      status.blockNumber = registration.blockNumber;

      t.enter('confirming');
      // The manager answers at our depth, just checked canonical: no second wait.
      if (registration === managedTx) return registration;
      const waiting = registration;
      const confirmed = await waitForConfirmations({
        chain,
        status,
        chainId,
        tx: registration,
        confirmations,
        sliceMs: POLL_SLICE_MS,
        timed: (name, fn) => t.step('chainMs', name, fn),
        firstSlice: confirmSlice,
        // A chain that stalls for days: the wait goes on in a new run.
        afterPause: async (next) => {
          if (historyBudgetSpent(REGISTRATION_CONTINUES_PATCH)) await continueRegistration(r, 'confirming', next, waiting);
        },
      });
      confirmSlice = 1;
      if (confirmed) return confirmed;
      // A reorg took the registration out of the chain: our own is sent again from the
      // bytes already signed; someone else's is looked for again on chain (often the same
      // transaction, mined in another block) and handed over again only if it is gone.
      status.lastError = `registration ${registration.hash} was reorganised out of the chain`;
      t.enter('registering');
      registration = sender ? await sendLegacy(sender) : viaManager ? (managedTx = await registerWithManager(ask, pre, r)) : undefined;
      if (!registration && !sender && !viaManager && since(REFIND_REGISTRATION_PATCH)) {
        // Whoever sent it (often our own manager, for a sibling CVM of the same app) usually
        // mines it again within a few blocks: look for a while before anyone is asked.
        let again: ChainPreflight | undefined;
        for (let look = 0; look < REFIND_LOOKS; look++) {
          if (look > 0) await sleep(REFIND_FIRST_PAUSE_MS * 2 ** (look - 1));
          again = await t.step('chainMs', 'chainPreflight', () => chainRead().chainPreflight({ chainId, appId, composeHash }));
          if (again.existing) break;
        }
        if (again?.existing) {
          status.lastError = `registration ${status.transactionHash} was reorganised; found again as ${again.existing.hash} in block ${again.existing.blockNumber}`;
          registration = again.existing;
        } else if (again?.signerIsOwner && since(SIGNER_MANAGER_PATCH)) {
          // Gone for good and ours to send: the manager registers it, once for every CVM of the app.
          registration = managedTx = await registerWithManager(ask, again, r);
        }
      }
    }
  }
}

/** The checked input, or a non-retryable InvalidInput failure that lists every problem. */
function checkedInput(input: unknown): CheckedUpdateInput {
  const check = checkUpdateEnvInput(input);
  if (check.ok) return check.value;
  throw ApplicationFailure.create({
    type: FAILURE.InvalidInput,
    message: describeInputProblems(check.problems),
    nonRetryable: true,
    details: [{ problems: check.problems }],
  });
}
