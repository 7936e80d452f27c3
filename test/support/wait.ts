import type { Client } from '@temporalio/client';
import { getEnvUpdateStatus, type UpdateStatus } from '../../src/client.ts';

// Polling for a condition in end-to-end tests: the probe may throw while the thing it reads
// does not exist yet (a workflow's first task has not run), which only counts as "not yet".
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls an update's status query until `pred` holds; a timeout says what the status was last. */
export async function waitForStatus(
  client: Client,
  cvmId: string,
  pred: (s: UpdateStatus) => boolean,
  timeoutMs = 30_000,
): Promise<UpdateStatus> {
  let last: UpdateStatus | undefined;
  try {
    return await waitFor(
      `the status of ${cvmId} to match`,
      async () => {
        last = await getEnvUpdateStatus(client, cvmId);
        return pred(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}
