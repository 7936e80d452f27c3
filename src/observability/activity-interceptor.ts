// Worker-side activity metrics: Phala Cloud API errors by kind (the SDK's own metrics
// already count activity attempts, failures and latencies).
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { apiErrorKindOf } from '../activities/failures.ts';
import { METRICS } from './metric-names.ts';

export const apiErrorMetrics: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      try {
        return await next(input);
      } catch (err) {
        const kind = apiErrorKindOf(err);
        if (kind !== undefined) {
          ctx.metricMeter
            .createCounter(METRICS.apiErrors, '1', 'Phala Cloud API errors by kind')
            .add(1, { kind, activity: ctx.info.activityType });
        }
        throw err;
      }
    },
  },
});
