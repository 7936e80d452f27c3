// The fleet through our service: every update started at once, one signer key, then what the
// chain and the worker say about it.
import { getEnvUpdateStatus } from '../../src/client.ts';
import { workflowIdForCvm, type UpdateEnvResult } from '../../src/workflows/definitions.ts';
import { chainClient, registrationsMined, type Registrations } from './chain.ts';
import type { FleetApp } from './fleet-setup.ts';
import { readProcessMemory, resetPeak } from './process-memory.ts';
import { beginSignedCount } from './signed.ts';
import { abandon, BenchFailure, checkOnchainNewKey, failureMessage, startUpdate, UPDATE_TIMEOUT_MS, type Ctx } from './updates.ts';

export interface ScenarioRun {
  updates: number;
  succeeded: number;
  /** Failure reason (first line) → how many updates failed with it. */
  failures: Record<string, number>;
  /** From the common start until the last update settled. */
  wallMs: number;
  /** Each succeeded update's time from the common start to its result. */
  perUpdateMs: number[];
  registrations: Registrations;
  signed: number;
  /** Peak RSS of the process that ran the updates, during the scenario; null if not measured. */
  peakRssMb: number | null;
}

export function countFailure(failures: Record<string, number>, err: unknown): void {
  // Ids and hashes differ per update; without them the same cause groups into one line.
  const reason = failureMessage(err)
    .split('\n')[0]!
    .replace(/0x[0-9a-fA-F]{8,}/g, '0x…')
    .replace(/cvm_[0-9a-f]+/g, 'cvm_…')
    .slice(0, 200);
  failures[reason] = (failures[reason] ?? 0) + 1;
}

/**
 * Gives up on updates parked for an operator (nobody signals them here) and, at the deadline,
 * on all that still run: each is aborted and counted as failed with the reason.
 */
export function watchFleet(
  ctx: Pick<Ctx, 'client'>,
  cvmIds: string[],
  giveUp: (cvmId: string, reason: string) => void,
  timeoutMs = UPDATE_TIMEOUT_MS,
): () => void {
  const ours = new Map(cvmIds.map((id) => [workflowIdForCvm(id), id]));
  const started = Date.now();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 2000));
      if (stopped) return;
      try {
        // Visibility is the server's: the worker, whose load is measured, answers nothing here.
        for await (const wf of ctx.client.workflow.list({ query: `UpdatePhase = 'awaiting_operator' AND ExecutionStatus = 'Running'` })) {
          const cvmId = ours.get(wf.workflowId);
          if (!cvmId) continue;
          const s = await getEnvUpdateStatus(ctx.client, cvmId).catch(() => undefined);
          giveUp(cvmId, `waits for an operator: ${s?.waitingFor ?? s?.lastError ?? '?'}`);
        }
      } catch {
        // Visibility can lag or hiccup; the deadline still holds.
      }
      if (Date.now() - started > timeoutMs) for (const id of cvmIds) giveUp(id, `not finished in ${timeoutMs / 1000} s`);
    }
  })();
  return () => {
    stopped = true;
  };
}

export async function runFleetThroughService(
  ctx: Ctx,
  apps: FleetApp[],
  opts: { rpcUrl: string; workerPid: number; signer: { chainId: number; address: string }; progress: (line: string) => void },
): Promise<ScenarioRun> {
  const prepared = apps.flatMap((a) => a.cvms);
  const cvmIds = prepared.map((p) => p.cvm.id);
  const chain = chainClient(opts.rpcUrl);
  const fromBlock = await chain.getBlockNumber({ cacheTime: 0 });
  const countSigned = await beginSignedCount(ctx.client, opts.signer);
  const peakReset = resetPeak(opts.workerPid);

  const failures: Record<string, number> = {};
  /** CVM id → its update's time from the common start to its result, for those that succeeded. */
  const finishedAt = new Map<string, number>();
  const givenUp = new Map<string, string>();
  const stopWatch = watchFleet(ctx, cvmIds, (cvmId, reason) => {
    if (givenUp.has(cvmId)) return;
    givenUp.set(cvmId, reason);
    void abandon(ctx, cvmId, reason);
  });
  const t0 = performance.now();
  let lastSettled = t0;
  let settled = 0;
  try {
    await Promise.race([
      Promise.all(
        prepared.map(async (p) => {
          try {
            const handle = await startUpdate(ctx, p);
            const result: UpdateEnvResult = await handle.result();
            checkOnchainNewKey(result);
            finishedAt.set(p.cvm.id, performance.now() - t0);
          } catch (err) {
            const reason = givenUp.get(p.cvm.id);
            countFailure(failures, reason ? new BenchFailure(reason) : err);
          } finally {
            lastSettled = Math.max(lastSettled, performance.now());
            if (++settled % 50 === 0 || settled === prepared.length) opts.progress(`  ${settled}/${prepared.length} settled`);
          }
        }),
      ),
      ctx.interrupted,
    ]);
  } finally {
    stopWatch();
  }
  const wallMs = lastSettled - t0;
  const memory = readProcessMemory(opts.workerPid);
  const toBlock = await chain.getBlockNumber({ cacheTime: 0 });
  const registrations = await registrationsMined(
    opts.rpcUrl,
    apps.map((a) => a.appId),
    fromBlock + 1n,
    toBlock,
  );
  const signed = await countSigned(cvmIds);
  // The slowest updates, phase by phase: a long tail is where a fleet's wall time goes.
  const slowest = [...finishedAt].sort((a, b) => b[1] - a[1]).slice(0, 3);
  for (const [cvmId, at] of slowest) {
    const s = await getEnvUpdateStatus(ctx.client, cvmId).catch(() => undefined);
    const phases = s?.timings.phases.map((ph) => `${ph.phase} ${ph.ms}`).join(', ') ?? '?';
    opts.progress(`  slow: ${cvmId} finished at ${Math.round(at)} ms: ${phases}; attempts ${JSON.stringify(s?.attempts ?? {})}`);
  }
  return {
    updates: prepared.length,
    succeeded: finishedAt.size,
    failures,
    wallMs,
    perUpdateMs: [...finishedAt.values()],
    registrations,
    signed,
    peakRssMb: peakReset ? memory.peakMb : null,
  };
}
