// How many changes wait for an operator right now, from Temporal's visibility store (the
// UpdatePhase search attribute): correct across any number of workers and restarts, which
// a count kept in worker memory is not. Every worker reports the same number; alert on max().
import type { MetricMeter } from '@temporalio/common';
import type { NativeConnection } from '@temporalio/worker';
import { WORKFLOW_TYPE } from '../workflows/definitions.ts';
import { METRICS } from './metric-names.ts';

export const AWAITING_OPERATOR_QUERY = `WorkflowType = "${WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND UpdatePhase = "awaiting_operator"`;

export function startOperatorGauge(opts: {
  connection: NativeConnection;
  namespace: string;
  meter: MetricMeter;
  intervalMs: number;
  onError: (err: unknown) => void;
}): () => void {
  const gauge = opts.meter.createGauge(METRICS.awaitingOperator, 'int', '1', 'env updates waiting for an operator now');
  let stopped = false;
  const tick = async () => {
    try {
      const res = await opts.connection.workflowService.countWorkflowExecutions({
        namespace: opts.namespace,
        query: AWAITING_OPERATOR_QUERY,
      });
      if (!stopped) gauge.set(Number(res.count ?? 0));
    } catch (err) {
      opts.onError(err);
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), opts.intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
