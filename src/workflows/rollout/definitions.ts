// Names and shapes of a fleet rollout, shared by the workflow, the client helpers and the CLI.
// Workflow-safe: nothing here may import Node or chain libraries.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ComposeHashPolicy, EnvVar } from '../definitions.ts';

export type RolloutTargets = { cvmIds: string[] } | { appId: string };

export interface RolloutInput {
  /** Names the rollout (workflow id `rollout-<rolloutId>`). Default: the requestId, else a fresh id. */
  rolloutId?: string;
  targets: RolloutTargets;
  /** The same env for every target. Plaintext: reaches Temporal only through the payload codec. */
  env: Record<string, string> | EnvVar[];
  allowedKeys?: string[];
  /** Children at once. Default 10. */
  concurrency?: number;
  /** The first `count` CVMs run first; the rest wait for `approve`, or go on when `autoApprove` and every canary succeeded. */
  canary?: number | { count: number; autoApprove?: boolean };
  /** After this many failures no child starts until an operator resumes, retries or aborts. Default: no limit. */
  maxFailures?: number;
  confirmations?: number;
  composeHashPolicy?: ComposeHashPolicy;
  /** Idempotency key of the caller. */
  requestId?: string;
  /** History events after which a run drains its children and continues as new. Default 8,000. */
  maxEventsPerRun?: number;
}

export type RolloutState = 'starting' | 'running' | 'paused' | 'awaiting_approval' | 'halted' | 'aborting' | 'completed' | 'aborted';

export interface RolloutFailure {
  cvmId: string;
  reason: string;
}

export interface RolloutCounts {
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  aborted: number;
}

/** What one run hands to the next at continue-as-new (and what the status is built from). */
export interface RolloutProgress {
  rolloutId: string;
  cvmIds: string[];
  /** Not started yet, in order. */
  pending: string[];
  succeeded: number;
  failed: RolloutFailure[];
  aborted: string[];
  /** How often each CVM was sent back by retryFailed (its next update gets a fresh request id). */
  retried?: Record<string, number>;
  /** Failures an operator has already let pass (resume after a halt). */
  failuresAccepted: number;
  canaryCount: number;
  canaryApproved: boolean;
  paused: boolean;
  abortReason?: string;
  startedAt: string;
  runs: number;
}

export interface RolloutStatus {
  rolloutId: string;
  state: RolloutState;
  total: number;
  counts: RolloutCounts;
  running: string[];
  failed: RolloutFailure[];
  canary: { count: number; approved: boolean };
  concurrency: number;
  maxFailures?: number;
  /** Why no child starts, while an operator's action is needed. */
  waitingFor?: string;
  abortReason?: string;
  startedAt: string;
  finishedAt?: string;
  /** Runs of the workflow so far (continue-as-new keeps history bounded). */
  runs: number;
}

export interface RolloutResult {
  rolloutId: string;
  total: number;
  succeeded: number;
  failed: RolloutFailure[];
  /** CVMs left unchanged by an abort: aborted while running, or never started. */
  aborted: string[];
  abortReason?: string;
  timings: { startedAt: string; finishedAt: string; totalMs: number };
}

export const rolloutStatusQuery = defineQuery<RolloutStatus>('status');
export const pauseRolloutUpdate = defineUpdate<RolloutStatus>('pause');
export const resumeRolloutUpdate = defineUpdate<RolloutStatus>('resume');
export const approveRolloutUpdate = defineUpdate<RolloutStatus>('approve');
/** Returns once every running child has ended. */
export const abortRolloutUpdate = defineUpdate<RolloutStatus, [{ reason?: string }]>('abort');
/** Failed CVMs go back to the front of the queue. */
export const retryFailedRolloutUpdate = defineUpdate<RolloutStatus>('retryFailed');

export const RolloutIdAttribute = defineSearchAttributeKey('RolloutId', SearchAttributeType.KEYWORD);

export const ROLLOUT_WORKFLOW_TYPE = 'rolloutWorkflow';
export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_MAX_EVENTS_PER_RUN = 8_000;
/** Every child's start event carries the (encrypted) env: bound a run's history in bytes too. */
export const MAX_HISTORY_BYTES_PER_RUN = 20 * 1024 * 1024;
export const MAX_TARGETS = 10_000;

export function rolloutWorkflowId(rolloutId: string): string {
  return `rollout-${rolloutId}`;
}

export function canaryOf(input: Pick<RolloutInput, 'canary'>): { count: number; autoApprove: boolean } {
  const c = input.canary;
  if (c === undefined) return { count: 0, autoApprove: false };
  if (typeof c === 'number') return { count: c, autoApprove: false };
  return { count: c.count, autoApprove: c.autoApprove === true };
}

/** Input errors that name the field; shared by the client (before starting) and the workflow. */
export function rolloutInputProblem(input: RolloutInput): string | undefined {
  if (!input || typeof input !== 'object') return 'input must be an object';
  const t = input.targets as unknown;
  if (!t || typeof t !== 'object') return 'targets must be {cvmIds: [...]} or {appId}';
  if ('cvmIds' in t) {
    const ids = (t as { cvmIds: unknown }).cvmIds;
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => typeof id !== 'string' || id.trim() === '')) {
      return 'targets.cvmIds must be a non-empty list of CVM ids';
    }
    if (ids.length > MAX_TARGETS) return `targets.cvmIds may list at most ${MAX_TARGETS} CVMs`;
    if (new Set(ids).size !== ids.length) return 'targets.cvmIds lists a CVM twice';
  } else if ('appId' in t) {
    const appId = (t as { appId: unknown }).appId;
    if (typeof appId !== 'string' || !/^(0x)?[0-9a-fA-F]{40}$/.test(appId))
      return 'targets.appId must be 40 hex characters, optionally 0x-prefixed';
  } else return 'targets must be {cvmIds: [...]} or {appId}';
  if (input.env === null || typeof input.env !== 'object') return 'env must be an object or a list of {key, value}';
  const posInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  if (input.concurrency !== undefined && !posInt(input.concurrency)) return 'concurrency must be a positive integer';
  if (input.maxFailures !== undefined && !posInt(input.maxFailures)) return 'maxFailures must be a positive integer';
  if (input.confirmations !== undefined && !posInt(input.confirmations)) return 'confirmations must be a positive integer';
  if (input.maxEventsPerRun !== undefined && !(posInt(input.maxEventsPerRun) && input.maxEventsPerRun >= 20)) {
    return 'maxEventsPerRun must be an integer of at least 20';
  }
  if (input.canary !== undefined) {
    const c = input.canary as unknown;
    const count = typeof c === 'number' ? c : c && typeof c === 'object' ? (c as { count?: unknown }).count : undefined;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0)
      return 'canary must be a count (a non-negative integer) or {count, autoApprove?}';
  }
  if (input.composeHashPolicy !== undefined && !['strict', 'warn', 'off'].includes(input.composeHashPolicy)) {
    return "composeHashPolicy must be 'strict', 'warn' or 'off'";
  }
  for (const f of ['rolloutId', 'requestId'] as const) {
    const v = input[f];
    if (v !== undefined && (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(v))) {
      return `${f} must be 1-200 characters: letters, digits, '.', '_', ':' or '-'`;
    }
  }
  return undefined;
}
