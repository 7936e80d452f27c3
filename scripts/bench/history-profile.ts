// Where a scenario's time went, read from the histories of its workflows: how long workflow and
// activity tasks waited in their queues, how long the worker held them, how many of each kind
// there were. Queue waits that grow with the fleet point at the worker's slots or the server;
// long task holds point at the worker's CPU.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { quantile, tsMs } from './stats.ts';

const EventType = proto.temporal.api.enums.v1.EventType;

export interface Spread {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

export interface HistoryProfile {
  workflows: number;
  /** Histories read; the others could not be (deleted, or the server hiccuped). */
  read: number;
  /** Events of each type, over all workflows. */
  eventTypes: Record<string, number>;
  workflowTasks: { count: number; queueMs: Spread; heldMs: Spread };
  activityTasks: { count: number; queueMs: Spread; byType: Record<string, number> };
}

function spread(values: number[]): Spread {
  if (values.length === 0) return { n: 0, p50: 0, p95: 0, max: 0 };
  return {
    n: values.length,
    p50: Math.round(quantile(values, 0.5)),
    p95: Math.round(quantile(values, 0.95)),
    max: Math.round(Math.max(...values)),
  };
}

/** `count` over the histories read, to a tenth. */
function perWorkflow(p: HistoryProfile, count: number): number {
  return Math.round((count / Math.max(1, p.read)) * 10) / 10;
}

const eventsOf = (p: HistoryProfile) => Object.values(p.eventTypes).reduce((a, b) => a + b, 0);

/** Profiles the latest run of each workflow id (and the runs it continued from are not followed). */
export async function profileHistories(client: Client, workflowIds: string[], concurrency = 8): Promise<HistoryProfile> {
  const wftQueue: number[] = [];
  const wftHeld: number[] = [];
  const actQueue: number[] = [];
  const byType: Record<string, number> = {};
  const eventTypes: Record<string, number> = {};
  let read = 0;
  let next = 0;
  const one = async (workflowId: string) => {
    let history;
    try {
      history = await client.workflow.getHandle(workflowId).fetchHistory();
    } catch {
      return;
    }
    read++;
    const at = new Map<number, number>();
    // The time from the event `eventId` (scheduled, or started) to `time`, into `into`.
    const gap = (into: number[], time: number, eventId: unknown) => {
      const then = at.get(Number(eventId));
      if (then !== undefined) into.push(time - then);
    };
    for (const e of history.events ?? []) {
      const time = tsMs(e.eventTime);
      at.set(Number(e.eventId), time);
      const typeName = (EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '');
      eventTypes[typeName] = (eventTypes[typeName] ?? 0) + 1;
      if (e.workflowTaskStartedEventAttributes) gap(wftQueue, time, e.workflowTaskStartedEventAttributes.scheduledEventId);
      if (e.workflowTaskCompletedEventAttributes) gap(wftHeld, time, e.workflowTaskCompletedEventAttributes.startedEventId);
      if (e.activityTaskStartedEventAttributes) gap(actQueue, time, e.activityTaskStartedEventAttributes.scheduledEventId);
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) {
        const name = scheduled.activityType?.name ?? '?';
        byType[name] = (byType[name] ?? 0) + 1;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, workflowIds.length) }, async () => {
      while (next < workflowIds.length) await one(workflowIds[next++]!);
    }),
  );
  return {
    workflows: workflowIds.length,
    read,
    eventTypes,
    workflowTasks: { count: eventTypes.WORKFLOW_TASK_STARTED ?? 0, queueMs: spread(wftQueue), heldMs: spread(wftHeld) },
    activityTasks: { count: eventTypes.ACTIVITY_TASK_SCHEDULED ?? 0, queueMs: spread(actQueue), byType },
  };
}

/** The profile's table rows: the fleet's update workflows beside the signer manager's last run. */
export function profileTable(updates: HistoryProfile, manager: HistoryProfile | undefined): string[][] {
  const per = (p: HistoryProfile, count: number) => String(perWorkflow(p, count));
  const row = (label: string, f: (p: HistoryProfile) => string): string[] => [label, f(updates), manager ? f(manager) : '—'];
  return [
    row('events per workflow', (p) => per(p, eventsOf(p))),
    row('  search attribute upserts', (p) => per(p, p.eventTypes.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES ?? 0)),
    row('  markers (patches, local activities)', (p) => per(p, p.eventTypes.MARKER_RECORDED ?? 0)),
    row(
      '  signals received / sent',
      (p) =>
        `${per(p, p.eventTypes.WORKFLOW_EXECUTION_SIGNALED ?? 0)} / ${per(p, p.eventTypes.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED ?? 0)}`,
    ),
    row('workflow tasks per workflow', (p) => per(p, p.workflowTasks.count)),
    row('  queued p50 / p95 (ms)', (p) => `${p.workflowTasks.queueMs.p50} / ${p.workflowTasks.queueMs.p95}`),
    row('  held by the worker p50 / p95 (ms)', (p) => `${p.workflowTasks.heldMs.p50} / ${p.workflowTasks.heldMs.p95}`),
    row('activity tasks per workflow', (p) => per(p, p.activityTasks.count)),
    row('  queued p50 / p95 (ms)', (p) => `${p.activityTasks.queueMs.p50} / ${p.activityTasks.queueMs.p95}`),
  ];
}

/** The figures of the JSON line. */
export function profileFigures(p: HistoryProfile) {
  return {
    workflows: p.workflows,
    eventsPerWorkflow: perWorkflow(p, eventsOf(p)),
    eventTypes: p.eventTypes,
    workflowTasksPerWorkflow: perWorkflow(p, p.workflowTasks.count),
    workflowTaskQueueMs: p.workflowTasks.queueMs,
    workflowTaskHeldMs: p.workflowTasks.heldMs,
    activityTasksPerWorkflow: perWorkflow(p, p.activityTasks.count),
    activityTaskQueueMs: p.activityTasks.queueMs,
    activityTypes: p.activityTasks.byType,
  };
}
