// Where a secret could end up in plaintext: workflow histories and visibility records as the
// server stores them (read without the payload codec), log files, and CLI output.
import { readFileSync, existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { temporal } = proto;

export interface Needle {
  /** What the secret is, for the report (never the value). */
  label: string;
  value: string;
}

export interface Hit {
  /** Where: a workflow id, a file name, a CLI command. */
  where: string;
  label: string;
}

/** Every needle found in `haystack`, once per needle. */
export function findNeedles(haystack: Buffer | string, needles: Needle[], where: string): Hit[] {
  const hay = typeof haystack === 'string' ? Buffer.from(haystack, 'utf8') : haystack;
  return needles.filter((n) => hay.includes(Buffer.from(n.value, 'utf8'))).map((n) => ({ where, label: n.label }));
}

export interface HistoryScan {
  workflows: number;
  /** Event count of the longest history (one run). */
  maxHistoryLength: number;
  longestWorkflowId: string;
  historyHits: Hit[];
  /** Memo and search attributes as the visibility store keeps them. */
  visibilityHits: Hit[];
  /** The search attribute values themselves, for the report. */
  searchAttributeNames: string[];
}

/** Reads every execution of the namespace (all runs) through the raw service API: no codec in the way. */
export async function scanHistories(client: Client, needles: Needle[]): Promise<HistoryScan> {
  const svc = client.workflowService;
  const namespace = client.options.namespace;
  const scan: HistoryScan = {
    workflows: 0,
    maxHistoryLength: 0,
    longestWorkflowId: '',
    historyHits: [],
    visibilityHits: [],
    searchAttributeNames: [],
  };
  const names = new Set<string>();
  let listToken: Uint8Array | undefined;
  do {
    const page = await svc.listWorkflowExecutions({ namespace, pageSize: 200, nextPageToken: listToken });
    for (const info of page.executions ?? []) {
      const workflowId = info.execution?.workflowId ?? '?';
      scan.workflows++;
      for (const name of Object.keys(info.searchAttributes?.indexedFields ?? {})) names.add(name);
      const visible = temporal.api.workflow.v1.WorkflowExecutionInfo.encode(info).finish();
      scan.visibilityHits.push(...findNeedles(Buffer.from(visible), needles, workflowId));

      const events: proto.temporal.api.history.v1.IHistoryEvent[] = [];
      let historyToken: Uint8Array | undefined;
      do {
        const h = await svc.getWorkflowExecutionHistory({
          namespace,
          execution: { workflowId, runId: info.execution?.runId ?? '' },
          nextPageToken: historyToken,
          maximumPageSize: 1000,
        });
        events.push(...(h.history?.events ?? []));
        historyToken = h.nextPageToken && h.nextPageToken.length > 0 ? h.nextPageToken : undefined;
      } while (historyToken);
      if (events.length > scan.maxHistoryLength) {
        scan.maxHistoryLength = events.length;
        scan.longestWorkflowId = workflowId;
      }
      const raw = temporal.api.history.v1.History.encode({ events }).finish();
      scan.historyHits.push(...findNeedles(Buffer.from(raw), needles, workflowId));
    }
    listToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (listToken);
  scan.searchAttributeNames = [...names].sort();
  return scan;
}

/** Needles found in each log file that exists. */
export function scanFiles(paths: string[], needles: Needle[]): { files: number; bytes: number; hits: Hit[] } {
  let files = 0;
  let bytes = 0;
  const hits: Hit[] = [];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const content = readFileSync(path);
    files++;
    bytes += content.length;
    hits.push(...findNeedles(content, needles, path.split('/').pop()!));
  }
  return { files, bytes, hits };
}
