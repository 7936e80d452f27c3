// Which run of a workflow id carried a given requestId, and how that change ended. Used by
// the client before it starts a change and by the workflow's own guard (through an activity),
// so a request seen once is never applied a second time, however many changes came since.
import { WorkflowFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { RequestIdAttribute } from './workflows/definitions.ts';
import { FAILURE } from './failure-types.ts';

export type RequestOutcome = 'running' | 'completed' | 'failed' | 'aborted' | 'terminated' | 'cancelled' | 'timed out';

export interface EarlierRequest {
  workflowId: string;
  requestId: string;
  /** The run the request started. */
  firstRunId: string;
  /** Its latest run: the same as firstRunId unless it continued as new. */
  runId: string;
  outcome: RequestOutcome;
}

interface RunSeen {
  runId: string;
  startTime: number;
  status: string;
}

function carries(info: Pick<WorkflowExecutionInfo, 'typedSearchAttributes' | 'memo'>, requestId: string): boolean {
  const indexed = info.typedSearchAttributes.get(RequestIdAttribute);
  return indexed === requestId || info.memo?.requestId === requestId;
}

/** Visibility queries quote the id: an id that would need escaping is refused rather than guessed at. */
function quoted(workflowId: string): string {
  if (/["'\\\n\r]/.test(workflowId)) throw new TypeError(`workflow id ${JSON.stringify(workflowId)} cannot be looked up: it holds quotes`);
  return `"${workflowId}"`;
}

/**
 * The change that `requestId` started on `workflowId`, if any run other than `excludeRunId`
 * carried it. Visibility finds older runs (eventually consistent, which suits closed runs);
 * the latest run is read with describe, which is consistent.
 */
export async function findRequest(
  client: Client,
  workflowId: string,
  requestId: string,
  opts: { excludeRunId?: string } = {},
): Promise<EarlierRequest | undefined> {
  const runs = new Map<string, RunSeen>();
  for await (const info of client.workflow.list({ query: `WorkflowId = ${quoted(workflowId)}` })) {
    if (carries(info, requestId))
      runs.set(info.runId, { runId: info.runId, startTime: info.startTime.getTime(), status: info.status.name });
  }
  const latest = await client.workflow
    .getHandle(workflowId)
    .describe()
    .catch(() => undefined);
  if (latest && carries(latest, requestId)) {
    runs.set(latest.runId, { runId: latest.runId, startTime: latest.startTime.getTime(), status: latest.status.name });
  }
  if (opts.excludeRunId) runs.delete(opts.excludeRunId);
  const ordered = [...runs.values()].sort((a, b) => a.startTime - b.startTime);
  const head = ordered[0];
  if (!head) return undefined;
  // One run of a workflow id at a time: the run after one that continued as new is its continuation.
  let last = head;
  for (let i = 1; last.status === 'CONTINUED_AS_NEW' && i < ordered.length; i++) last = ordered[i]!;
  return { workflowId, requestId, firstRunId: head.runId, runId: last.runId, outcome: await outcomeOf(client, workflowId, last) };
}

async function outcomeOf(client: Client, workflowId: string, run: RunSeen): Promise<RequestOutcome> {
  switch (run.status) {
    case 'RUNNING':
    case 'CONTINUED_AS_NEW':
      // A continuation not yet visible: the change still runs.
      return 'running';
    case 'COMPLETED':
      return 'completed';
    case 'TERMINATED':
      return 'terminated';
    case 'CANCELLED':
      return 'cancelled';
    case 'TIMED_OUT':
      return 'timed out';
    case 'FAILED': {
      const failure = await client.workflow
        .getHandle(workflowId, run.runId, { followRuns: false })
        .result()
        .then(
          () => undefined,
          (err: unknown) => (err instanceof WorkflowFailedError ? err.cause : undefined),
        );
      return failure instanceof ApplicationFailure && failure.type === FAILURE.Aborted ? 'aborted' : 'failed';
    }
    default:
      return 'failed';
  }
}

export function describeEarlierRequest(e: EarlierRequest): string {
  const run = e.runId === e.firstRunId ? `run ${e.runId}` : `run ${e.firstRunId} (continued as ${e.runId})`;
  return `request ${e.requestId} was already used by ${run} of ${e.workflowId}, which ${e.outcome === 'running' ? 'is still running' : e.outcome}`;
}
