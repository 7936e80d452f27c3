// Updates through our service, as a backend starts them: startEnvUpdate, then awaitEnvUpdate.
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { abortEnvUpdate, awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate, type EnvUpdateHandle } from '../../src/client.ts';
import type { SimAdminClient, SimCvmSummary } from '../../src/simulator/admin-client.ts';
import type { EnvVar, UpdateEnvResult } from '../../src/workflows/definitions.ts';

export class BenchFailure extends Error {}

export interface Ctx {
  client: Client;
  sim: SimAdminClient;
  taskQueue: string;
  /** An app contract owned by the signer, for the sequential and throughput sections. */
  signerAppId: string;
  applyDelayMs: number | undefined;
  interrupted: Promise<never>;
}

export interface Prepared {
  cvm: SimCvmSummary;
  env: EnvVar[];
  allowedKeys: string[];
}

export const secretValue = () => randomBytes(18).toString('base64url');

export function failureMessage(err: unknown): string {
  if (err instanceof WorkflowFailedError) {
    let cause: unknown = err.cause;
    const chain: string[] = [err.message];
    while (cause instanceof Error) {
      chain.push(cause.message);
      cause = (cause as Error & { cause?: unknown }).cause;
    }
    return chain.join(': ');
  }
  return err instanceof Error ? err.message : String(err);
}

export const UPDATE_TIMEOUT_MS = 5 * 60_000;

/**
 * Waits for the result, but gives up on an update parked for an operator: nobody will signal
 * it here, so waiting would only hang the benchmark.
 */
export async function awaitResult(ctx: Ctx, handle: EnvUpdateHandle, cvmId: string): Promise<UpdateEnvResult> {
  const result = awaitEnvUpdate(handle);
  result.catch(() => {});
  let settled = false;
  const started = Date.now();
  const watchdog = (async (): Promise<never> => {
    while (!settled) {
      await new Promise((r) => setTimeout(r, 1000));
      if (settled) break;
      const s = await getEnvUpdateStatus(ctx.client, cvmId).catch(() => undefined);
      if (s?.phase === 'awaiting_operator') {
        throw new BenchFailure(`the update of CVM ${cvmId} waits for an operator: ${s.waitingFor ?? s.lastError ?? '?'}`);
      }
      if (Date.now() - started > UPDATE_TIMEOUT_MS) {
        throw new BenchFailure(`the update of CVM ${cvmId} did not finish in ${UPDATE_TIMEOUT_MS / 1000} s (phase ${s?.phase ?? '?'})`);
      }
    }
    return new Promise<never>(() => {});
  })();
  watchdog.catch(() => {});
  try {
    return await Promise.race([result, watchdog, ctx.interrupted]);
  } catch (err) {
    if (err instanceof BenchFailure) throw err;
    throw new BenchFailure(`the update of CVM ${cvmId} failed: ${failureMessage(err)}`);
  } finally {
    settled = true;
  }
}

/** Starts the update of one prepared CVM; the request id is fresh, so it never attaches to an older change. */
export async function startUpdate(ctx: Ctx, p: Prepared): Promise<EnvUpdateHandle> {
  const { handle } = await startEnvUpdate(
    ctx.client,
    { cvmId: p.cvm.id, env: p.env, allowedKeys: p.allowedKeys, requestId: `bench-${randomBytes(6).toString('hex')}` },
    { taskQueue: ctx.taskQueue },
  );
  return handle;
}

/** An update that must take the two-phase path: a registration, applied at the end. */
export function checkOnchainNewKey(r: UpdateEnvResult): void {
  if (r.transactionHash === undefined || !r.allowedEnvsChanged) {
    throw new BenchFailure(`CVM ${r.cvmId}: a new allowed key finished without a registration transaction`);
  }
  if (r.kms !== 'onchain') throw new BenchFailure(`CVM ${r.cvmId} reported ${r.kms} KMS for an on-chain update`);
  if (!r.applied) throw new BenchFailure(`CVM ${r.cvmId}: the update finished without being applied`);
}

/** Aborts an update the bench gave up on, so it sends nothing more while the run ends. */
export async function abandon(ctx: Ctx, cvmId: string, reason: string): Promise<void> {
  await abortEnvUpdate(ctx.client, cvmId, `bench: ${reason}`).catch(() => {});
}
