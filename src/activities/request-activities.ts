// The workflow's own idempotency guard: a start that did not go through the client helpers
// (the Temporal UI, another SDK) is checked against every earlier run of its workflow id.
import { Context } from '@temporalio/activity';
import { describeEarlierRequest, findRequest, type EarlierRequest } from '../request-runs.ts';

export type EarlierRequestAnswer = { found: false } | { found: true; earlier: EarlierRequest; message: string };

export function createRequestActivities() {
  return {
    async findEarlierRequest(a: { workflowId: string; runId: string; requestId: string }): Promise<EarlierRequestAnswer> {
      const earlier = await findRequest(Context.current().client, a.workflowId, a.requestId, { excludeRunId: a.runId });
      return earlier ? { found: true, earlier, message: describeEarlierRequest(earlier) } : { found: false };
    },
  };
}
