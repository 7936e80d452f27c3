// Names and shapes shared by the workflow, the client helpers and the CLI. Workflow-safe:
// nothing here may import Node or chain libraries.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { RegistrationProposal } from '../chain/registration-proposal.ts';
import type { RegistrationResume } from './registration-round.ts';

export type ComposeHashPolicy = 'strict' | 'warn' | 'off';

export interface EnvVar {
  key: string;
  value: string;
}

export interface UpdateEnvInput {
  cvmId: string;
  /** Plaintext: reaches Temporal only through the payload codec. */
  env: Record<string, string> | EnvVar[];
  /** Keys the CVM may read (its compose's allowed_envs). Default: the env's own keys. */
  allowedKeys?: string[];
  /** Blocks on top of the registration before phase 2. Default: the worker's per-chain setting. */
  confirmations?: number;
  composeHashPolicy?: ComposeHashPolicy;
  /** Wait until the CVM has applied the change. Default true. */
  waitForApplied?: boolean;
  /** Idempotency key of the caller; also sent to the API as the request id. */
  requestId?: string;
  /** Internal: set by the workflow itself when it continues as new in the middle of a long wait. */
  resume?: UpdateResume;
}

/** What a continued run needs to go on with the same wait and end with the same result. */
export type UpdateResume = ApplyResume | RegistrationResume;

/** Only ids, hashes and counters: the env is not needed after the API accepted the change. */
export interface ApplyResume {
  at: 'applying';
  target: { cvmId: string; appId: string; kms: 'phala' | 'onchain' };
  correlationId: string;
  allowedEnvsChanged: boolean;
  /** Polling slices so far: the backoff goes on where it was. */
  slices: number;
  status: UpdateStatus;
}

export const PHASES = [
  'validating',
  'resolving',
  'encrypting',
  'phase1',
  'checking',
  'registering',
  'confirming',
  'phase2',
  'applying',
  'awaiting_operator',
  'completed',
  'failed',
  'aborted',
] as const;
export type UpdatePhase = (typeof PHASES)[number];

export interface UpdateTimings {
  startedAt: string;
  finishedAt?: string;
  totalMs?: number;
  /** Time inside activities that call the Phala Cloud API. */
  apiMs: number;
  /** Time inside activities that talk to the chain (signing, sending, mining, confirmations). */
  chainMs: number;
  /** Time spent waiting for an operator. */
  operatorMs: number;
  /** Per-phase wall time, in the order phases were entered. */
  phases: { phase: UpdatePhase; ms: number }[];
}

export interface UpdateStatus {
  cvmId: string;
  phase: UpdatePhase;
  appId?: string;
  kms?: 'phala' | 'onchain';
  chainId?: number;
  composeHash?: string;
  /** The transaction that registered the compose hash (ours or an operator's). */
  transactionHash?: string;
  /** Every registration transaction we signed, replacements included. */
  sentTransactions: { hash: string; nonce: number; maxFeePerGas: string; maxPriorityFeePerGas: string }[];
  blockNumber?: number;
  confirmations?: number;
  requiredConfirmations?: number;
  correlationId?: string;
  attempts: Record<string, number>;
  /** While it waits for an owner who signs elsewhere: the exact transaction to propose. */
  ownerProposal?: RegistrationProposal;
  /** Why the workflow waits for an operator, while it does. */
  waitingFor?: string;
  lastError?: string;
  timings: UpdateTimings;
}

export interface UpdateEnvResult {
  cvmId: string;
  kms: 'phala' | 'onchain';
  correlationId: string;
  composeHash?: string;
  transactionHash?: string;
  blockNumber?: number;
  allowedEnvsChanged: boolean;
  applied: boolean;
  timings: UpdateTimings;
}

export const statusQuery = defineQuery<UpdateStatus>('status');
/** Operator: run the step that is waiting again. */
export const retrySignal = defineSignal('retry');
/** Operator: stop the change; nothing further is sent. */
export const abortSignal = defineSignal<[{ reason?: string }?]>('abort');
/** Operator: a registration sent by someone else (e.g. a multisig owner); verified before use. */
export const useTransactionSignal = defineSignal<[{ transactionHash: string }]>('useTransaction');

/** An operator action the workflow accepted (an Update); a refusal is the Update's failure, with the reason. */
export interface OperatorAnswer {
  action: 'retry' | 'abort' | 'useTransaction';
  /** The phase when the action was accepted. */
  phase: UpdatePhase;
  message: string;
  transactionHash?: string;
  /** useTransaction: the block of a registration already checked on chain; absent while it is not mined yet. */
  blockNumber?: number;
}

// The same names as the signals: the UI's update form and `temporal workflow update` find them
// by the words operators already know. Refused unless the workflow waits for that action.
export const retryUpdate = defineUpdate<OperatorAnswer>('retry');
export const abortUpdate = defineUpdate<OperatorAnswer, [{ reason?: string }]>('abort');
export const useTransactionUpdate = defineUpdate<OperatorAnswer, [{ transactionHash: string }]>('useTransaction');

export const CvmIdAttribute = defineSearchAttributeKey('CvmId', SearchAttributeType.KEYWORD);
export const AppIdAttribute = defineSearchAttributeKey('AppId', SearchAttributeType.KEYWORD);
export const UpdatePhaseAttribute = defineSearchAttributeKey('UpdatePhase', SearchAttributeType.KEYWORD);
/** The caller's idempotency key: finds every earlier run of a request, not only the latest. */
export const RequestIdAttribute = defineSearchAttributeKey('RequestId', SearchAttributeType.KEYWORD);

/** A start whose requestId an earlier run already carried: it ends before sending anything. */

export const WORKFLOW_TYPE = 'updateCvmEnvWorkflow';

/** One change per CVM at a time: the id is derived from the CVM. */
export function workflowIdForCvm(cvmId: string): string {
  return `cvm-env-${cvmId}`;
}
