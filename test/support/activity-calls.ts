import type proto from '@temporalio/proto';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

/**
 * The activity types a history called, in order: activity tasks, and local activities (the
 * update's quick reads since 'local-reads'), which the SDK's core records as markers. A local
 * activity that retried in the worker is one marker; one that paused on a timer is one per try.
 */
export function activityCalls(events: readonly HistoryEvent[]): string[] {
  return events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? localActivityType(e) ?? []);
}

/** Only the activity tasks: what the server dispatched to a worker. */
export function activityTasks(events: readonly HistoryEvent[]): string[] {
  return events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

export function localActivityType(e: HistoryEvent): string | undefined {
  const marker = e.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = marker.details?.data?.payloads?.[0]?.data;
  return data ? (JSON.parse(Buffer.from(data).toString()) as { activity_type?: string }).activity_type : undefined;
}
