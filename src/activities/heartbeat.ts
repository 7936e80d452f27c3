import { Context } from '@temporalio/activity';

/**
 * Wraps every activity so it heartbeats while it runs. With a short heartbeat timeout
 * on every activity task, a worker that dies mid-call is noticed in seconds, not after the
 * whole start-to-close timeout, and the step moves to another worker. A local activity has
 * no heartbeat: the workflow task it runs in stands for it (a dead worker's task times out and
 * the activity runs again elsewhere), and the worker's core logs a warning for each one sent.
 */
export function withHeartbeats<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T, everyMs = 2000): T {
  const wrapped: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      const ctx = Context.current();
      if (ctx.info.isLocal) return await fn(...args);
      ctx.heartbeat();
      const timer = setInterval(() => ctx.heartbeat(), everyMs);
      try {
        return await fn(...args);
      } finally {
        clearInterval(timer);
      }
    };
  }
  return wrapped as T;
}

/** Progress of an activity that may also run as a local activity: a heartbeat only where there is one. */
export function progress(details: unknown): void {
  const ctx = Context.current();
  if (!ctx.info.isLocal) ctx.heartbeat(details);
}
