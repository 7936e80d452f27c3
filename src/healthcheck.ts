#!/usr/bin/env node
// The image's HEALTHCHECK: the worker answers on its metrics endpoint (served by the Temporal
// runtime, so it also proves the native runtime is alive). Exit 0 healthy, 1 not.
import { isMainModule } from './entry.ts';

export async function checkHealth(env: NodeJS.ProcessEnv = process.env, timeoutMs = 4000): Promise<boolean> {
  const port = env.METRICS_PORT?.trim();
  if (!port) return false;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok;
  } catch {
    return false;
  }
}

if (isMainModule(import.meta.url)) {
  process.exit((await checkHealth()) ? 0 : 1);
}
