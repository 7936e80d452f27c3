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
import {
  abortSignal,
  CvmIdAttribute,
  retrySignal,
  statusQuery,
  useTransactionSignal,
  workflowIdForCvm,
  WORKFLOW_TYPE,
  type UpdateEnvInput,
  type UpdateEnvResult,
  type UpdateStatus,
} from './workflows/definitions.ts';
import type { updateCvmEnvWorkflow } from './workflows/update-cvm-env.ts';
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

export type { UpdateEnvInput, UpdateEnvResult, UpdateStatus } from './workflows/definitions.ts';
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

function checkInput(input: UpdateEnvInput): void {
  if (!input || typeof input !== 'object') throw new TypeError('input must be an object');
  if (typeof input.cvmId !== 'string' || input.cvmId.trim() === '') throw new TypeError('cvmId is required');
  if (input.env === null || typeof input.env !== 'object') throw new TypeError('env must be an object or a list of {key, value}');
  if (input.requestId !== undefined && (typeof input.requestId !== 'string' || input.requestId === '')) {
    throw new TypeError('requestId must be a non-empty string');
  }
  if (input.confirmations !== undefined && (!Number.isInteger(input.confirmations) || input.confirmations < 1)) {
    throw new TypeError('confirmations must be a positive integer');
  }
  if (input.composeHashPolicy !== undefined && !['strict', 'warn', 'off'].includes(input.composeHashPolicy)) {
    throw new TypeError("composeHashPolicy must be 'strict', 'warn' or 'off'");
  }
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

/**
 * Starts the change of one CVM's env. One change per CVM runs at a time: the same
 * requestId attaches to the change it started (running or finished); another is refused.
 */
export async function startEnvUpdate(client: Client, input: UpdateEnvInput, options: StartEnvUpdateOptions): Promise<StartedEnvUpdate> {
  checkInput(input);
  const workflowId = workflowIdForCvm(input.cvmId);
  const existing = client.workflow.getHandle<typeof updateCvmEnvWorkflow>(workflowId);
  if (input.requestId) {
    const previous = await requestIdOf(existing);
    if (previous?.requestId === input.requestId) {
      return { handle: client.workflow.getHandle(workflowId, previous.runId), workflowId, attached: true };
    }
  }
  try {
    const handle = await client.workflow.start<typeof updateCvmEnvWorkflow>(WORKFLOW_TYPE, {
      workflowId,
      taskQueue: options.taskQueue,
      args: [input],
      memo: input.requestId ? { requestId: input.requestId } : {},
      typedSearchAttributes: [{ key: CvmIdAttribute, value: input.cvmId }],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    return { handle, workflowId, attached: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = await requestIdOf(existing);
    if (running && input.requestId && running.requestId === input.requestId) {
      return { handle: client.workflow.getHandle(workflowId, running.runId), workflowId, attached: true };
    }
    throw new UpdateAlreadyRunningError(input.cvmId, workflowId, running?.runId);
  }
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

export function retryEnvUpdate(client: Client, cvmOrWorkflowId: string): Promise<void> {
  return envUpdateHandle(client, cvmOrWorkflowId).signal(retrySignal);
}

export function abortEnvUpdate(client: Client, cvmOrWorkflowId: string, reason?: string): Promise<void> {
  return envUpdateHandle(client, cvmOrWorkflowId).signal(abortSignal, { reason });
}

export function useRegistrationTransaction(client: Client, cvmOrWorkflowId: string, transactionHash: string): Promise<void> {
  if (!/^0x[0-9a-fA-F]{64}$/.test(transactionHash)) {
    return Promise.reject(new TypeError(`transaction hash must be 0x followed by 64 hex digits, got ${JSON.stringify(transactionHash)}`));
  }
  return envUpdateHandle(client, cvmOrWorkflowId).signal(useTransactionSignal, { transactionHash });
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
