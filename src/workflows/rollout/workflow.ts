// A fleet rollout: one update workflow per CVM as a child (its usual id `cvm-env-<cvmId>`, so
// one change per CVM still holds), at most `concurrency` at once, canaries first, a stop after
// `maxFailures`, and an operator's hand through Updates. Registrations go through the signer's
// transaction manager like any update's, so CVMs of one app share one registration.
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { createActivities } from '../../activities/index.ts';
import { parseAbortArg } from '../operator-input.ts';
import { abortSignal, CvmIdAttribute, WORKFLOW_TYPE, workflowIdForCvm, type UpdateEnvInput } from '../definitions.ts';
import type { updateCvmEnvWorkflow } from '../update-cvm-env.ts';
import { FAILURE, FINAL_FAILURES } from '../../failure-types.ts';
import {
  abortRolloutUpdate,
  approveRolloutUpdate,
  canaryOf,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_EVENTS_PER_RUN,
  MAX_HISTORY_BYTES_PER_RUN,
  pauseRolloutUpdate,
  resumeRolloutUpdate,
  retryFailedRolloutUpdate,
  RolloutIdAttribute,
  rolloutInputProblem,
  rolloutStatusQuery,
  type RolloutInput,
  type RolloutProgress,
  type RolloutResult,
  type RolloutState,
  type RolloutStatus,
} from './definitions.ts';

type Activities = ReturnType<typeof createActivities>;

const api = proxyActivities<Activities>({
  startToCloseTimeout: '45 seconds',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 12,
    nonRetryableErrorTypes: FINAL_FAILURES,
  },
});

type Child = ChildWorkflowHandle<typeof updateCvmEnvWorkflow>;

export async function rolloutWorkflow(input: RolloutInput, carried?: RolloutProgress): Promise<RolloutResult> {
  const problem = rolloutInputProblem(input);
  if (problem) throw ApplicationFailure.nonRetryable(problem, FAILURE.InvalidInput);
  const concurrency = input.concurrency ?? DEFAULT_CONCURRENCY;
  const canary = canaryOf(input);
  const maxEvents = input.maxEventsPerRun ?? DEFAULT_MAX_EVENTS_PER_RUN;
  const rolloutId = carried?.rolloutId ?? input.rolloutId ?? workflowInfo().workflowId.replace(/^rollout-/, '');

  // Before the targets are listed the books are empty; an operator may already pause or abort.
  const p: RolloutProgress = carried ?? {
    rolloutId,
    cvmIds: [],
    pending: [],
    succeeded: 0,
    failed: [],
    aborted: [],
    failuresAccepted: 0,
    canaryCount: canary.count,
    canaryApproved: canary.count === 0,
    paused: false,
    startedAt: new Date(workflowInfo().startTime).toISOString(),
    runs: 1,
  };
  let listed = carried !== undefined;
  /** Started (or starting) children by CVM; the handle once the child exists. */
  const running = new Map<string, Child | undefined>();
  let finishedAt: string | undefined;
  let draining = false;
  let version = 0;
  const bump = () => void version++;

  const halted = (q: RolloutProgress) => input.maxFailures !== undefined && q.failed.length - q.failuresAccepted >= input.maxFailures;
  const startedSoFar = (q: RolloutProgress) => q.cvmIds.length - q.pending.length;
  const awaitingApproval = (q: RolloutProgress) =>
    canary.count > 0 && !q.canaryApproved && q.pending.length > 0 && startedSoFar(q) >= Math.min(canary.count, q.cvmIds.length);

  function stateOf(q: RolloutProgress): RolloutState {
    if (finishedAt) return q.abortReason !== undefined ? 'aborted' : 'completed';
    if (q.abortReason !== undefined) return 'aborting';
    if (q.paused) return 'paused';
    if (!listed) return 'starting';
    if (halted(q) && q.pending.length > 0) return 'halted';
    if (awaitingApproval(q) && running.size === 0) return 'awaiting_approval';
    return 'running';
  }

  function waitingFor(q: RolloutProgress, state: RolloutState): string | undefined {
    switch (state) {
      case 'paused':
        return 'paused by an operator: resume, or abort';
      case 'halted':
        return `${q.failed.length - q.failuresAccepted} failure(s) reached maxFailures ${input.maxFailures}: resume, retryFailed, or abort`;
      case 'awaiting_approval':
        return `the ${canary.count} canary CVM(s) finished${q.failed.length ? ` with ${q.failed.length} failure(s)` : ''}: approve to roll out to the rest, or abort`;
      default:
        return undefined;
    }
  }

  function status(): RolloutStatus {
    const q = p;
    const state = stateOf(q);
    const why = waitingFor(q, state);
    return {
      rolloutId,
      state,
      total: q.cvmIds.length,
      counts: {
        pending: q.pending.length,
        running: running.size,
        succeeded: q.succeeded,
        failed: q.failed.length,
        aborted: q.aborted.length,
      },
      running: [...running.keys()],
      failed: [...q.failed],
      canary: { count: canary.count, approved: q.canaryApproved },
      concurrency,
      ...(input.maxFailures !== undefined ? { maxFailures: input.maxFailures } : {}),
      ...(why ? { waitingFor: why } : {}),
      ...(q.abortReason !== undefined ? { abortReason: q.abortReason } : {}),
      startedAt: q.startedAt,
      ...(finishedAt ? { finishedAt } : {}),
      runs: q.runs,
    };
  }

  /** The books, or a rejection once the rollout has ended. */
  function live(what: string): RolloutProgress {
    if (finishedAt) throw new Error(`cannot ${what}: the rollout has ended (${stateOf(p)})`);
    return p;
  }

  setHandler(rolloutStatusQuery, status);
  setHandler(
    pauseRolloutUpdate,
    () => {
      live('pause').paused = true;
      bump();
      return status();
    },
    {
      validator: () => {
        const q = live('pause');
        if (q.abortReason !== undefined) throw new Error('cannot pause: the rollout is being aborted');
        if (q.paused) throw new Error('cannot pause: the rollout is already paused');
      },
    },
  );
  setHandler(
    resumeRolloutUpdate,
    () => {
      const q = live('resume');
      q.paused = false;
      // A halt is lifted by letting the failures so far pass: maxFailures more may come.
      q.failuresAccepted = q.failed.length;
      bump();
      return status();
    },
    {
      validator: () => {
        const q = live('resume');
        if (q.abortReason !== undefined) throw new Error('cannot resume: the rollout is being aborted');
        if (!q.paused && !halted(q)) throw new Error('cannot resume: the rollout is neither paused nor halted');
      },
    },
  );
  setHandler(
    approveRolloutUpdate,
    () => {
      live('approve').canaryApproved = true;
      bump();
      return status();
    },
    {
      validator: () => {
        const q = live('approve');
        if (canary.count === 0) throw new Error('cannot approve: the rollout has no canary');
        if (q.canaryApproved) throw new Error('cannot approve: the rollout is already approved');
        if (q.abortReason !== undefined) throw new Error('cannot approve: the rollout is being aborted');
      },
    },
  );
  setHandler(
    retryFailedRolloutUpdate,
    () => {
      const q = live('retry failed CVMs');
      const ids = q.failed.map((f) => f.cvmId);
      q.retried ??= {};
      for (const id of ids) q.retried[id] = (q.retried[id] ?? 0) + 1;
      q.failed = [];
      q.failuresAccepted = 0;
      q.pending.unshift(...ids);
      bump();
      return status();
    },
    {
      validator: () => {
        const q = live('retry failed CVMs');
        if (q.abortReason !== undefined) throw new Error('cannot retry failed CVMs: the rollout is being aborted');
        if (q.failed.length === 0) throw new Error('cannot retry failed CVMs: none has failed');
      },
    },
  );
  setHandler(
    abortRolloutUpdate,
    async (arg: unknown) => {
      const q = live('abort');
      if (q.abortReason === undefined) {
        // Read as before the validator checked the argument, so that older histories replay alike.
        const reason = ((arg as { reason?: string } | null | undefined)?.reason || 'aborted by an operator') as string;
        q.abortReason = reason;
        q.aborted.push(...q.pending);
        q.pending = [];
        for (const child of running.values()) if (child) void abortChild(child, reason);
        bump();
      }
      // Answers once nothing is left running: every child has ended, cleanly aborted or done.
      await condition(() => running.size === 0);
      return status();
    },
    {
      validator: (arg: unknown) => {
        live('abort');
        // The handler reads only {"reason"}: a bare string is refused rather than silently dropped.
        if (typeof arg === 'string') throw new Error('cannot abort: abort takes {"reason": "<text>"} or nothing, got a bare string');
        const parsed = parseAbortArg(arg);
        if (!parsed.ok) throw new Error(`cannot abort: ${parsed.problem}`);
      },
    },
  );

  async function abortChild(child: Child, reason: string): Promise<void> {
    try {
      await child.signal(abortSignal, { reason: `rollout ${rolloutId} aborted: ${reason}` });
    } catch {
      // The child ended in the meantime: nothing to abort.
    }
  }

  async function runChild(q: RolloutProgress, cvmId: string): Promise<void> {
    running.set(cvmId, undefined);
    const childInput: UpdateEnvInput = {
      cvmId,
      env: input.env,
      requestId: `rollout-${rolloutId}-${cvmId}${q.retried?.[cvmId] ? `-retry${q.retried[cvmId]}` : ''}`.slice(0, 200),
      ...(input.allowedKeys !== undefined ? { allowedKeys: input.allowedKeys } : {}),
      ...(input.confirmations !== undefined ? { confirmations: input.confirmations } : {}),
      ...(input.composeHashPolicy !== undefined ? { composeHashPolicy: input.composeHashPolicy } : {}),
    };
    try {
      const child = await startChild<typeof updateCvmEnvWorkflow>(WORKFLOW_TYPE, {
        workflowId: workflowIdForCvm(cvmId),
        args: [childInput],
        memo: { requestId: childInput.requestId, rolloutId },
        typedSearchAttributes: [
          { key: RolloutIdAttribute, value: rolloutId },
          { key: CvmIdAttribute, value: cvmId },
        ],
        // Ending the rollout (even by terminate) never cuts a CVM's change in half.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      });
      running.set(cvmId, child);
      if (q.abortReason !== undefined) void abortChild(child, q.abortReason);
      await child.result();
      q.succeeded++;
    } catch (err) {
      if (q.abortReason !== undefined && isAborted(err)) q.aborted.push(cvmId);
      else q.failed.push({ cvmId, reason: reasonOf(err, cvmId) });
    } finally {
      running.delete(cvmId);
      bump();
    }
  }

  if (!listed) {
    // Bad env or keys fail the rollout at once, before any CVM is touched.
    await api.validateInput({ env: input.env, allowedKeys: input.allowedKeys });
    const targets = input.targets;
    const cvmIds = 'cvmIds' in targets ? [...targets.cvmIds] : (await api.listAppCvms({ appId: targets.appId })).cvmIds;
    if (cvmIds.length === 0)
      throw ApplicationFailure.nonRetryable(
        `targets.appId: app ${'appId' in targets ? targets.appId : ''} has no CVMs`,
        FAILURE.InvalidInput,
      );
    p.cvmIds = cvmIds;
    // Aborted before the list came: nothing starts, every target is reported aborted.
    if (p.abortReason !== undefined) p.aborted.push(...cvmIds);
    else p.pending = [...cvmIds];
    listed = true;
    bump();
  }
  const q = p;

  for (;;) {
    if (!draining && q.abortReason === undefined) {
      const info = workflowInfo();
      draining = info.continueAsNewSuggested || info.historyLength >= maxEvents || info.historySize >= MAX_HISTORY_BYTES_PER_RUN;
    }
    // Canaries that all succeeded let an auto-approved rollout go on by itself.
    if (canary.autoApprove && awaitingApproval(q) && running.size === 0 && q.failed.length === 0) q.canaryApproved = true;
    while (
      q.abortReason === undefined &&
      !draining &&
      !q.paused &&
      !halted(q) &&
      q.pending.length > 0 &&
      running.size < concurrency &&
      (q.canaryApproved || startedSoFar(q) < canary.count)
    ) {
      void runChild(q, q.pending.shift()!);
    }
    if (running.size === 0 && (q.pending.length === 0 || q.abortReason !== undefined)) break;
    if (draining && running.size === 0) {
      // Every child has ended and been booked: the next run carries the books on.
      await condition(allHandlersFinished);
      await continueAsNew<typeof rolloutWorkflow>(input, { ...q, runs: q.runs + 1 });
    }
    const seen = version;
    await condition(() => version !== seen);
  }

  finishedAt = new Date().toISOString();
  await condition(allHandlersFinished);
  return {
    rolloutId,
    total: q.cvmIds.length,
    succeeded: q.succeeded,
    failed: q.failed,
    aborted: q.aborted,
    ...(q.abortReason !== undefined ? { abortReason: q.abortReason } : {}),
    timings: { startedAt: q.startedAt, finishedAt, totalMs: Date.parse(finishedAt) - Date.parse(q.startedAt) },
  };
}

function causeOf(err: unknown): unknown {
  let e = err;
  while ((e instanceof ChildWorkflowFailure || e instanceof ActivityFailure) && e.cause) e = e.cause;
  return e;
}

function isAborted(err: unknown): boolean {
  const cause = causeOf(err);
  return cause instanceof ApplicationFailure && cause.type === FAILURE.Aborted;
}

function reasonOf(err: unknown, cvmId: string): string {
  if (err instanceof WorkflowExecutionAlreadyStartedError) {
    return `another change of this CVM is running (workflow ${workflowIdForCvm(cvmId)}); it was not started`;
  }
  const cause = causeOf(err);
  const message = cause instanceof Error ? cause.message : String(cause);
  const type = cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ` : '';
  return `${type}${message}`.split('\n')[0]!.slice(0, 300);
}
