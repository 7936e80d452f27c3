import { Context } from '@temporalio/activity';

/**
 * Wraps every activity so it heartbeats while it runs. With a short heartbeat timeout
 * on every activity, a worker that dies mid-call is noticed in seconds, not after the
 * whole start-to-close timeout, and the step moves to another worker.
 */
export function withHeartbeats<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T, everyMs = 2000): T {
  const wrapped: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      const ctx = Context.current();
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
