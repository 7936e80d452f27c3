import type { ActivityInterceptorsFactory } from '@temporalio/worker';

/**
 * Fault injection for the crash tests and for trying the service by hand: with
 * WORKER_CRASH_BEFORE_ACTIVITY=name[,name…] the worker SIGKILLs itself just before it
 * runs one of those activities, the way a machine loss would, so another worker has
 * to pick the workflow up from history. Never set in production.
 */
export function crashInterceptorFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityInterceptorsFactory | undefined {
  const names = (env.WORKER_CRASH_BEFORE_ACTIVITY ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  if (names.length === 0) return undefined;
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        if (names.includes(ctx.info.activityType)) {
          process.stderr.write(`[worker] crash injected before ${ctx.info.activityType}\n`);
          process.kill(process.pid, 'SIGKILL');
        }
        return next(input);
      },
    },
  });
}
