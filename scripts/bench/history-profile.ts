// Where a scenario's time went, read from the histories of its workflows: how long workflow and
// activity tasks waited in their queues, how long the worker held them, how many of each kind
// there were. Queue waits that grow with the fleet point at the worker's slots or the server;
// long task holds point at the worker's CPU.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { quantile } from './stats.ts';

const EventType = proto.temporal.api.enums.v1.EventType;

export interface Spread {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

export interface HistoryProfile {
  workflows: number;
  /** Events per workflow run (all runs of one workflow id count as one). */
  eventsPerWorkflow: Spread;
  workflowTasks: { perWorkflow: number; queueMs: Spread; heldMs: Spread };
  activityTasks: { perWorkflow: number; queueMs: Spread; runMs: Spread; byType: Record<string, number> };
  /** Events of each type, over all workflows. */
  eventTypes: Record<string, number>;
  /** Histories that could not be read (deleted, or the server hiccuped). */
  unread: number;
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

function millis(t: proto.temporal.api.history.v1.IHistoryEvent['eventTime']): number {
  if (!t) return 0;
  return Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

/** Profiles the latest run of each workflow id (and the runs it continued from are not followed). */
export async function profileHistories(client: Client, workflowIds: string[], concurrency = 8): Promise<HistoryProfile> {
  const events: number[] = [];
  const wftQueue: number[] = [];
  const wftHeld: number[] = [];
  const actQueue: number[] = [];
  const actRun: number[] = [];
  const byType: Record<string, number> = {};
  const eventTypes: Record<string, number> = {};
  let wfts = 0;
  let acts = 0;
  let unread = 0;
  let next = 0;
  const one = async (workflowId: string) => {
    let history;
    try {
      history = await client.workflow.getHandle(workflowId).fetchHistory();
    } catch {
      unread++;
      return;
    }
    const list = history.events ?? [];
    events.push(list.length);
    const at = new Map<number, number>();
    const activityType = new Map<number, string>();
    for (const e of list) {
      const id = Number(e.eventId);
      const time = millis(e.eventTime);
      at.set(id, time);
      const typeName = (EventType[e.eventType ?? 0] ?? String(e.eventType)).replace(/^EVENT_TYPE_/, '');
      eventTypes[typeName] = (eventTypes[typeName] ?? 0) + 1;
      switch (e.eventType) {
        case EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: {
          const scheduled = at.get(Number(e.workflowTaskStartedEventAttributes?.scheduledEventId));
          if (scheduled !== undefined) wftQueue.push(time - scheduled);
          wfts++;
          break;
        }
        case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: {
          const started = at.get(Number(e.workflowTaskCompletedEventAttributes?.startedEventId));
          if (started !== undefined) wftHeld.push(time - started);
          break;
        }
        case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {
          const name = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
          activityType.set(id, name);
          byType[name] = (byType[name] ?? 0) + 1;
          acts++;
          break;
        }
        case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
          const scheduled = at.get(Number(e.activityTaskStartedEventAttributes?.scheduledEventId));
          if (scheduled !== undefined) actQueue.push(time - scheduled);
          break;
        }
        case EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
          const started = at.get(Number(e.activityTaskCompletedEventAttributes?.startedEventId));
          if (started !== undefined) actRun.push(time - started);
          break;
        }
        default:
          break;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, workflowIds.length) }, async () => {
      while (next < workflowIds.length) await one(workflowIds[next++]!);
    }),
  );
  const read = Math.max(1, workflowIds.length - unread);
  return {
    workflows: workflowIds.length,
    eventsPerWorkflow: spread(events),
    workflowTasks: { perWorkflow: Math.round((wfts / read) * 10) / 10, queueMs: spread(wftQueue), heldMs: spread(wftHeld) },
    activityTasks: { perWorkflow: Math.round((acts / read) * 10) / 10, queueMs: spread(actQueue), runMs: spread(actRun), byType },
    eventTypes,
    unread,
  };
}

/** The profile's table rows: the fleet's update workflows beside the signer manager's last run. */
export function profileTable(updates: HistoryProfile, manager: HistoryProfile | undefined): string[][] {
  const per = (p: HistoryProfile, n: number) => String(Math.round((n / Math.max(1, p.workflows - p.unread)) * 10) / 10);
  const eventsOf = (p: HistoryProfile) => Object.values(p.eventTypes).reduce((a, b) => a + b, 0);
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
    row('workflow tasks per workflow', (p) => String(p.workflowTasks.perWorkflow)),
    row('  queued p50 / p95 (ms)', (p) => `${p.workflowTasks.queueMs.p50} / ${p.workflowTasks.queueMs.p95}`),
    row('  held by the worker p50 / p95 (ms)', (p) => `${p.workflowTasks.heldMs.p50} / ${p.workflowTasks.heldMs.p95}`),
    row('activity tasks per workflow', (p) => String(p.activityTasks.perWorkflow)),
    row('  queued p50 / p95 (ms)', (p) => `${p.activityTasks.queueMs.p50} / ${p.activityTasks.queueMs.p95}`),
  ];
}

/** The figures of the JSON line. */
export function profileFigures(p: HistoryProfile) {
  const n = Math.max(1, p.workflows - p.unread);
  const events = Object.values(p.eventTypes).reduce((a, b) => a + b, 0);
  return {
    workflows: p.workflows,
    eventsPerWorkflow: Math.round((events / n) * 10) / 10,
    eventTypes: p.eventTypes,
    workflowTasksPerWorkflow: p.workflowTasks.perWorkflow,
    workflowTaskQueueMs: p.workflowTasks.queueMs,
    workflowTaskHeldMs: p.workflowTasks.heldMs,
    activityTasksPerWorkflow: p.activityTasks.perWorkflow,
    activityTaskQueueMs: p.activityTasks.queueMs,
    activityTypes: p.activityTasks.byType,
  };
}
