// Typed helpers for backends: start a change (idempotent by requestId), wait for it,
// read its status, and send the operator actions.
import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  abortSignal,
  abortUpdate,
  CvmIdAttribute,
  RequestIdAttribute,
  retrySignal,
  retryUpdate,
  statusQuery,
  useTransactionSignal,
  useTransactionUpdate,
  type OperatorAnswer,
  workflowIdForCvm,
  WORKFLOW_TYPE,
  type UpdateEnvInput,
  type UpdateEnvResult,
  type UpdateStatus,
} from './workflows/definitions.ts';
import type { updateCvmEnvWorkflow } from './workflows/update-cvm-env.ts';
import { describeEarlierRequest, findRequest, type EarlierRequest } from './request-runs.ts';
import { checkUpdateEnvInput, describeInputProblems, type InputProblem } from './workflows/input-schema.ts';
import { FAILURE } from './failure-types.ts';
import { payloadBudgetProblem } from './workflows/payload-budget.ts';
import type { rolloutWorkflow } from './workflows/rollout/workflow.ts';
import {
  abortRolloutUpdate,
  approveRolloutUpdate,
  pauseRolloutUpdate,
  resumeRolloutUpdate,
  retryFailedRolloutUpdate,
  ROLLOUT_WORKFLOW_TYPE,
  RolloutIdAttribute,
  rolloutInputProblem,
  rolloutStatusQuery,
  rolloutWorkflowId,
  type RolloutInput,
  type RolloutResult,
  type RolloutStatus,
} from './workflows/rollout/definitions.ts';
import { SIGNER_WORKFLOW_TYPE, signerStatusQuery, signerWorkflowId, type SignerStatus } from './workflows/signer-manager/definitions.ts';

export type { OperatorAnswer, UpdateEnvInput, UpdateEnvResult, UpdateStatus } from './workflows/definitions.ts';
export type { InputProblem } from './workflows/input-schema.ts';
export type { SignerStatus } from './workflows/signer-manager/definitions.ts';
export type {
  RolloutInput,
  RolloutResult,
  RolloutStatus,
  RolloutState,
  RolloutFailure,
  RolloutTargets,
} from './workflows/rollout/definitions.ts';

export type EnvUpdateHandle = WorkflowHandle<typeof updateCvmEnvWorkflow>;

/** A different change already runs on this CVM. */
export class UpdateAlreadyRunningError extends Error {
  override readonly name = 'UpdateAlreadyRunningError';
  constructor(
    readonly cvmId: string,
    readonly workflowId: string,
    readonly runId: string | undefined,
  ) {
    super(
      `an env update of CVM ${cvmId} is already running (workflow ${workflowId}${runId ? `, run ${runId}` : ''}); ` +
        'wait for it, or abort it, before starting another; pass the same requestId to attach to it',
    );
  }
}

/** The requestId was used before by a change that did not complete: it is not applied again. */
export class RequestAlreadyUsedError extends Error {
  override readonly name = 'RequestAlreadyUsedError';
  constructor(readonly earlier: EarlierRequest) {
    super(`${describeEarlierRequest(earlier)}; it is not applied again: use a new requestId for a new change`);
  }
}

/** The env would not fit one Temporal payload once encoded; the message gives the numbers. */
export class PayloadTooLargeError extends RangeError {
  override readonly name = 'PayloadTooLargeError';
}

export interface StartEnvUpdateOptions {
  taskQueue: string;
}

export interface StartedEnvUpdate {
  handle: EnvUpdateHandle;
  workflowId: string;
  /** True when an earlier start with the same requestId was found instead of a new one started. */
  attached: boolean;
}

/**
 * The input broke the schema the workflow checks too (workflows/input-schema.ts); nothing was
 * started. A TypeError, as bad arguments to a function are; `problems` names each field.
 */
export class InvalidUpdateInputError extends TypeError {
  override readonly name = 'InvalidUpdateInputError';
  /** The failure type the workflow would have ended with. */
  readonly type = FAILURE.InvalidInput;
  constructor(readonly problems: readonly InputProblem[]) {
    super(describeInputProblems(problems));
  }
}

function checkInput(input: UpdateEnvInput): void {
  const check = checkUpdateEnvInput(input);
  if (!check.ok) throw new InvalidUpdateInputError(check.problems);
  const tooLarge = payloadBudgetProblem(input);
  if (tooLarge) throw new PayloadTooLargeError(tooLarge);
}

async function requestIdOf(handle: WorkflowHandle): Promise<{ requestId?: string; running: boolean; runId: string } | undefined> {
  try {
    const d = await handle.describe();
    return { requestId: d.memo?.requestId as string | undefined, running: d.status.name === 'RUNNING', runId: d.runId };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** A change that ran or runs for this request: attached to when it runs or completed, refused otherwise. */
function attachTo(client: Client, earlier: EarlierRequest): StartedEnvUpdate {
  if (earlier.outcome !== 'running' && earlier.outcome !== 'completed') throw new RequestAlreadyUsedError(earlier);
  return {
    handle: client.workflow.getHandle(earlier.workflowId, earlier.runId, { followRuns: true }),
    workflowId: earlier.workflowId,
    attached: true,
  };
}

/**
 * Starts the change of one CVM's env. One change per CVM runs at a time. A requestId seen
 * before, in any earlier run of the CVM, attaches to that change (running or completed) or is
 * refused (it failed or was aborted): an old request never brings its values back.
 */
export async function startEnvUpdate(client: Client, input: UpdateEnvInput, options: StartEnvUpdateOptions): Promise<StartedEnvUpdate> {
  checkInput(input);
  const workflowId = workflowIdForCvm(input.cvmId);
  const existing = client.workflow.getHandle<typeof updateCvmEnvWorkflow>(workflowId);
  if (input.requestId) {
    const earlier = await findRequest(client, workflowId, input.requestId);
    if (earlier) return attachTo(client, earlier);
  }
  try {
    const handle = await client.workflow.start<typeof updateCvmEnvWorkflow>(WORKFLOW_TYPE, {
      workflowId,
      taskQueue: options.taskQueue,
      args: [input],
      memo: input.requestId ? { requestId: input.requestId } : {},
      typedSearchAttributes: [
        { key: CvmIdAttribute, value: input.cvmId },
        ...(input.requestId ? [{ key: RequestIdAttribute, value: input.requestId }] : []),
      ],
      ...startSummary(input),
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    return { handle, workflowId, attached: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = await requestIdOf(existing);
    if (running && input.requestId && running.requestId === input.requestId) {
      return { handle: client.workflow.getHandle(workflowId, running.runId, { followRuns: true }), workflowId, attached: true };
    }
    throw new UpdateAlreadyRunningError(input.cvmId, workflowId, running?.runId);
  }
}

/** What the UI shows for the run from its start: ids and settings, never a key or a value. */
function startSummary(input: UpdateEnvInput): { staticSummary: string; staticDetails: string } {
  const count = Array.isArray(input.env) ? input.env.length : Object.keys(input.env).length;
  const details = [
    `**CVM:** ${input.cvmId}`,
    `**Variables:** ${count}`,
    `**Compose hash policy:** ${input.composeHashPolicy ?? 'strict'}`,
    `**Confirmations:** ${input.confirmations ?? "the worker's setting for the chain"}`,
    `**Wait until applied:** ${input.waitForApplied === false ? 'no' : 'yes'}`,
  ];
  if (input.requestId) details.push(`**Request:** ${input.requestId}`);
  details.push('', 'Its current details say what it waits for; the `status` query has the whole picture.');
  return { staticSummary: `env update of CVM ${input.cvmId}`, staticDetails: details.join('\n') };
}

/** Accepts a CVM id or a workflow id. */
export function envUpdateHandle(client: Client, cvmOrWorkflowId: string): EnvUpdateHandle {
  const workflowId = cvmOrWorkflowId.startsWith('cvm-env-') ? cvmOrWorkflowId : workflowIdForCvm(cvmOrWorkflowId);
  return client.workflow.getHandle<typeof updateCvmEnvWorkflow>(workflowId);
}

export function awaitEnvUpdate(handle: EnvUpdateHandle): Promise<UpdateEnvResult> {
  return handle.result();
}

export function getEnvUpdateStatus(client: Client, cvmOrWorkflowId: string): Promise<UpdateStatus> {
  return envUpdateHandle(client, cvmOrWorkflowId).query(statusQuery);
}

/** The update refused an operator action; `reason` is the workflow's own word for why. */
export class OperatorActionRefusedError extends Error {
  override readonly name = 'OperatorActionRefusedError';
  constructor(
    readonly action: OperatorAnswer['action'],
    readonly workflowId: string,
    readonly reason: string,
  ) {
    super(`${action} refused by ${workflowId}: ${reason}`);
  }
}

/** An accepted action. `via: 'signal'`: the run predates operator updates, so nothing was checked. */
export type OperatorActionResult =
  (OperatorAnswer & { via: 'update' }) | { action: OperatorAnswer['action']; via: 'signal'; message: string };

async function operatorAction(
  handle: EnvUpdateHandle,
  action: OperatorAnswer['action'],
  update: () => Promise<OperatorAnswer>,
  signal: () => Promise<void>,
): Promise<OperatorActionResult> {
  try {
    return { ...(await update()), via: 'update' };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause;
      // A worker still on code from before these updates answers so; the signal is what it knows.
      if (cause instanceof ApplicationFailure && cause.message.startsWith('No registered handler for update')) {
        await signal();
        return { action, via: 'signal', message: `${action} sent as a signal: this run takes no update, so it gives no answer` };
      }
      throw new OperatorActionRefusedError(action, handle.workflowId, cause?.message ?? err.message);
    }
    const d = await handle.describe().catch(() => undefined);
    if (d && d.status.name !== 'RUNNING') {
      throw new OperatorActionRefusedError(action, handle.workflowId, `the change has ended (${d.status.name.toLowerCase()})`);
    }
    throw err;
  }
}

/** Runs the step a waiting change is stuck on again; refused unless it waits for a retry. */
export function retryEnvUpdate(client: Client, cvmOrWorkflowId: string): Promise<OperatorActionResult> {
  const handle = envUpdateHandle(client, cvmOrWorkflowId);
  return operatorAction(
    handle,
    'retry',
    () => handle.executeUpdate(retryUpdate),
    () => handle.signal(retrySignal),
  );
}

/** Stops the change in any phase; nothing further is sent. */
export function abortEnvUpdate(client: Client, cvmOrWorkflowId: string, reason?: string): Promise<OperatorActionResult> {
  const handle = envUpdateHandle(client, cvmOrWorkflowId);
  return operatorAction(
    handle,
    'abort',
    () => handle.executeUpdate(abortUpdate, { args: [reason ? { reason } : {}] }),
    () => handle.signal(abortSignal, { reason }),
  );
}

/**
 * Hands over a registration made elsewhere. The workflow checks it on chain first: a mined
 * transaction that does not register the hash is refused with why; one not mined yet is
 * accepted and checked once mined. A newer hand-over replaces an older one.
 */
export function useRegistrationTransaction(
  client: Client,
  cvmOrWorkflowId: string,
  transactionHash: string,
): Promise<OperatorActionResult> {
  if (!/^0x[0-9a-fA-F]{64}$/.test(transactionHash)) {
    return Promise.reject(new TypeError(`transaction hash must be 0x followed by 64 hex digits, got ${JSON.stringify(transactionHash)}`));
  }
  const handle = envUpdateHandle(client, cvmOrWorkflowId);
  return operatorAction(
    handle,
    'useTransaction',
    () => handle.executeUpdate(useTransactionUpdate, { args: [{ transactionHash }] }),
    () => handle.signal(useTransactionSignal, { transactionHash }),
  );
}

/** The status of one key's transaction manager (pending nonces, fees, ages, counters). */
export function getSignerStatus(client: Client, chainId: number, address: string): Promise<SignerStatus> {
  return client.workflow.getHandle(signerWorkflowId(chainId, address)).query(signerStatusQuery);
}

/** Every running transaction manager of the namespace, found through its `Signer` search attribute. */
export async function listSigners(client: Client): Promise<{ workflowId: string; chainId: number; address: string }[]> {
  const out: { workflowId: string; chainId: number; address: string }[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${SIGNER_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'` })) {
    const m = /^signer-(\d+)-(0x[0-9a-f]{40})$/.exec(wf.workflowId);
    if (m) out.push({ workflowId: wf.workflowId, chainId: Number(m[1]), address: m[2]! });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Fleet rollouts
// ---------------------------------------------------------------------------

export type RolloutHandle = WorkflowHandle<typeof rolloutWorkflow>;

export interface StartedRollout {
  handle: RolloutHandle;
  workflowId: string;
  rolloutId: string;
  /** True when a rollout with this id already existed (same requestId, or none given) and was attached to. */
  attached: boolean;
}

/** A rollout with this id exists and was started for another request. */
export class RolloutAlreadyExistsError extends Error {
  override readonly name = 'RolloutAlreadyExistsError';
  constructor(
    readonly rolloutId: string,
    readonly workflowId: string,
  ) {
    super(`rollout ${rolloutId} already exists (workflow ${workflowId}) for another requestId; choose another rolloutId`);
  }
}

/**
 * Starts a rollout of one env to many CVMs. Idempotent: the rollout id (default: the
 * requestId) names the workflow, and a rollout id is never run twice; starting it again
 * attaches to the first unless the requestIds differ.
 */
export async function startRollout(client: Client, input: RolloutInput, options: StartEnvUpdateOptions): Promise<StartedRollout> {
  const problem = rolloutInputProblem(input);
  if (problem) throw new TypeError(problem);
  const rolloutId = input.rolloutId ?? input.requestId ?? randomUUID();
  const workflowId = rolloutWorkflowId(rolloutId);
  const attach = async (): Promise<StartedRollout> => {
    const previous = await requestIdOf(client.workflow.getHandle(workflowId));
    if (!previous) throw new Error(`rollout ${rolloutId} could be neither started nor found`);
    if (previous.requestId !== input.requestId) throw new RolloutAlreadyExistsError(rolloutId, workflowId);
    return { handle: client.workflow.getHandle(workflowId, previous.runId, { followRuns: true }), workflowId, rolloutId, attached: true };
  };
  try {
    const handle = await client.workflow.start<typeof rolloutWorkflow>(ROLLOUT_WORKFLOW_TYPE, {
      workflowId,
      taskQueue: options.taskQueue,
      args: [{ ...input, rolloutId }],
      memo: input.requestId ? { requestId: input.requestId } : {},
      typedSearchAttributes: [{ key: RolloutIdAttribute, value: rolloutId }],
      workflowIdConflictPolicy: 'FAIL',
      // A finished rollout is not run again under the same id.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    return { handle, workflowId, rolloutId, attached: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return attach();
  }
}

/** Accepts a rollout id or its workflow id. */
export function rolloutHandle(client: Client, rolloutOrWorkflowId: string): RolloutHandle {
  const workflowId = rolloutOrWorkflowId.startsWith('rollout-') ? rolloutOrWorkflowId : rolloutWorkflowId(rolloutOrWorkflowId);
  return client.workflow.getHandle<typeof rolloutWorkflow>(workflowId);
}

/** The rollout's result, across its continue-as-new runs. */
export function awaitRollout(handle: RolloutHandle): Promise<RolloutResult> {
  return handle.result();
}

export function getRolloutStatus(client: Client, rolloutId: string): Promise<RolloutStatus> {
  return rolloutHandle(client, rolloutId).query(rolloutStatusQuery);
}

/** The rollout refused an operator action (its validator said why), or the action failed. */
export class RolloutActionRefusedError extends Error {
  override readonly name = 'RolloutActionRefusedError';
}

async function act(handle: RolloutHandle, run: (h: RolloutHandle) => Promise<RolloutStatus>): Promise<RolloutStatus> {
  try {
    return await run(handle);
  } catch (err) {
    // The SDK's message is a generic "Workflow Update failed": the reason is in the cause.
    if (err instanceof WorkflowUpdateFailedError) {
      throw new RolloutActionRefusedError(`rollout ${handle.workflowId}: ${err.cause?.message ?? err.message}`);
    }
    // An Update to a closed workflow is refused by the server: say why in the rollout's words.
    const d = await handle.describe().catch(() => undefined);
    if (d && d.status.name !== 'RUNNING') {
      throw new RolloutActionRefusedError(`rollout ${handle.workflowId} has ended (${d.status.name.toLowerCase()})`);
    }
    throw err;
  }
}

export function pauseRollout(client: Client, rolloutId: string): Promise<RolloutStatus> {
  return act(rolloutHandle(client, rolloutId), (h) => h.executeUpdate(pauseRolloutUpdate));
}

export function resumeRollout(client: Client, rolloutId: string): Promise<RolloutStatus> {
  return act(rolloutHandle(client, rolloutId), (h) => h.executeUpdate(resumeRolloutUpdate));
}

export function approveRollout(client: Client, rolloutId: string): Promise<RolloutStatus> {
  return act(rolloutHandle(client, rolloutId), (h) => h.executeUpdate(approveRolloutUpdate));
}

export function retryFailedRollout(client: Client, rolloutId: string): Promise<RolloutStatus> {
  return act(rolloutHandle(client, rolloutId), (h) => h.executeUpdate(retryFailedRolloutUpdate));
}

/** Starts no new child, aborts the running ones, and returns once all of them have ended. */
export function abortRollout(client: Client, rolloutId: string, reason?: string): Promise<RolloutStatus> {
  return act(rolloutHandle(client, rolloutId), (h) => h.executeUpdate(abortRolloutUpdate, { args: [{ reason }] }));
}
