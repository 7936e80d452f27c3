// Update metrics recorded from the workflow side, without touching workflow bodies: the
// worker loads this module as a workflow interceptor. Deterministic code only; the SDK's
// workflow metric meter records nothing while a history is replayed, so a replay after a
// worker restart counts nothing twice. Labels carry kinds and phases, never ids or values;
// the phase log lines carry ids (from the SDK) and the phase, never a value.
import { livePhase } from '../workflows/update-tracker.ts';
import { ApplicationFailure, isCancellation, log, metricMeter, workflowInfo, type WorkflowInterceptors } from '@temporalio/workflow';
import { WORKFLOW_TYPE, type UpdatePhase } from '../workflows/definitions.ts';
import { FAILURE } from '../failure-types.ts';
import { ACTIVITY_MEANINGS } from './activity-meanings.ts';
import { activitySummary } from '../workflows/activity-summaries.ts';
import { METRICS } from './metric-names.ts';

const TERMINAL: ReadonlySet<string> = new Set<UpdatePhase>(['completed', 'failed', 'aborted']);

export function interceptors(): WorkflowInterceptors {
  const isUpdate = workflowInfo().workflowType === WORKFLOW_TYPE;
  let kms: string | undefined;
  let phase: string | undefined;
  let phaseSince = Date.now();
  const broadcast = new Set<string>();

  const started = metricMeter.createCounter(METRICS.updatesStarted, '1', 'env updates whose CVM was resolved, by KMS kind');
  const finished = metricMeter.createCounter(METRICS.updatesFinished, '1', 'env updates that ended, by KMS kind and outcome');
  const phaseDuration = metricMeter.createHistogram(METRICS.phaseDuration, 'float', 's', 'time an update spent in a phase');
  const operatorWaits = metricMeter.createCounter(METRICS.operatorWaits, '1', 'times an update began waiting for an operator');
  const registrations = metricMeter.createCounter(METRICS.registrationTransactions, '1', 'registration transactions by event');

  const ended = (outcome: 'completed' | 'failed' | 'aborted') => {
    if (kms === undefined) started.add(1, { kms: 'unknown' });
    finished.add(1, { kms: kms ?? 'unknown', outcome });
  };

  /** An activity call, as an activity task or a local activity: its summary, and what it means to the metrics. */
  async function scheduled<I extends { activityType: string; args: unknown[]; options: { summary?: string } }>(
    input: I,
    next: (input: I) => Promise<unknown>,
  ): Promise<unknown> {
    const meaning = ACTIVITY_MEANINGS[input.activityType];
    const arg = input.args[0] as Record<string, unknown> | undefined;
    const summary = input.options.summary ?? activitySummary(input.activityType, arg);
    if (summary !== undefined) input = { ...input, options: { ...input.options, summary } };
    for (const raw of meaning?.broadcastsRaw?.(arg) ?? []) {
      registrations.add(1, { event: broadcast.has(raw) ? 'rebroadcast' : 'sent' });
      broadcast.add(raw);
    }
    const result = await next(input);
    const signed = meaning?.signs?.(arg, result as Record<string, unknown> | undefined);
    if (signed && signed.count > 0) registrations.add(signed.count, { event: signed.event });
    const resolved = meaning?.resolvesKms?.(result as Record<string, unknown> | undefined);
    if (isUpdate && resolved !== undefined && kms === undefined) {
      kms = resolved;
      started.add(1, { kms });
    }
    return result;
  }

  return {
    inbound: [
      {
        async execute(input, next) {
          if (!isUpdate) return next(input);
          try {
            const result = await next(input);
            ended('completed');
            return result;
          } catch (err) {
            if (!isCancellation(err)) ended(err instanceof ApplicationFailure && err.type === FAILURE.Aborted ? 'aborted' : 'failed');
            throw err;
          }
        },
      },
    ],
    outbound: [
      {
        scheduleActivity: (input, next) => scheduled(input, next),
        // The quick reads run as local activities: the same summaries and meanings.
        scheduleLocalActivity: (input, next) => scheduled(input, next),
      },
    ],
    internals: [
      {
        concludeActivation(input, next) {
          // The tracker's phase: the UpdatePhase search attribute skips the passing ones.
          const now = isUpdate ? livePhase() : undefined;
          if (now !== undefined && now !== phase) {
            const at = Date.now();
            if (phase !== undefined && !TERMINAL.has(phase))
              phaseDuration.record((at - phaseSince) / 1000, { phase, kms: kms ?? 'unknown' });
            if (now === 'awaiting_operator') operatorWaits.add(1, { kms: kms ?? 'unknown' });
            // The workflow logger adds workflow and run ids and stays quiet during replay.
            log.info('update phase', { phase: now, previousPhase: phase ?? null, kms: kms ?? null });
            phase = now;
            phaseSince = at;
          }
          return next(input);
        },
      },
    ],
  };
}
