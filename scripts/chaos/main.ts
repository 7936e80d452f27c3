// `npm run chaos`: many on-chain env updates with one signer key while everything around them
// fails: worker processes SIGKILLed in turn, the Temporal server restarted, API and RPC errors,
// a reorg and a dropped transaction. Then it checks what must hold whatever happened: every
// update completed, each compose hash registered once, each CVM runs the env it was asked to,
// and no secret in plaintext in history, visibility, logs or CLI output. Progress goes to
// stderr; stdout carries the tables and, last, one JSON line. Exit 1 when a target is missed.
import { buildDist } from '../../src/dev/build-dist.ts';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { abortEnvUpdate, getEnvUpdateStatus, startEnvUpdate, type EnvUpdateHandle } from '../../src/client.ts';
import { installQuietRuntime, interruptible, LocalSession } from '../../src/dev/local-session.ts';
import { workerBundle } from '../../src/dev/worker-process.ts';
import { SimAdminClient } from '../../src/simulator/admin-client.ts';
import { workflowIdForCvm, type UpdateEnvResult } from '../../src/workflows/definitions.ts';
import { chainClient, deploySignerApps, pairKey, registrationsMined } from '../bench/chain.ts';
import { createFleet } from '../bench/fleet-setup.ts';
import { countFailure, watchFleet } from '../bench/fleet.ts';
import { BenchFailure, failureMessage, type Prepared } from '../bench/updates.ts';
import { dropOneTransaction, reorgRegistrations, type DropFault, type ReorgFault } from './chain-faults.ts';
import { scanCliOutput } from './cli-scan.ts';
import { scanFiles, scanHistories, type Hit, type Needle } from './leaks.ts';
import { ChaosUsageError, parseChaosOptions, USAGE, type ChaosOptions } from './options.ts';
import { printReport, type ChaosReport } from './report.ts';
import { startRpcFaultProxy, type RpcFaultProxy } from './rpc-fault-proxy.ts';
import { WorkerPool } from './workers.ts';

const progress = (line: string) => process.stderr.write(`${line}\n`);
const out = (line = '') => process.stdout.write(`${line}\n`);

type Outcome = { kind: 'completed'; result: UpdateEnvResult; ms: number } | { kind: 'failed' | 'other'; reason: string };

/** Rates of rules checked in turn (the first that fires wins) so that their shares add up as given. */
function sequentialRates(shares: number[]): number[] {
  let taken = 0;
  return shares.map((s) => {
    const r = s / (1 - taken);
    taken += s;
    return Math.min(1, r);
  });
}

/** API faults over every route: half 5xx (500, 502, 503 alike), half 429 with Retry-After 1 s. */
async function injectApiFaults(sim: SimAdminClient, rate: number, seed: number): Promise<void> {
  if (rate === 0) return;
  const share = rate / 6;
  const [r500, r502, r503, r429] = sequentialRates([share, share, share, rate / 2]);
  await sim.addFaults({
    seed,
    rules: [
      { id: 'chaos-500', route: '*', error: { status: 500, rate: r500! } },
      { id: 'chaos-502', route: '*', error: { status: 502, rate: r502! } },
      { id: 'chaos-503', route: '*', error: { status: 503, rate: r503! } },
      { id: 'chaos-429', route: '*', rateLimit: { rate: r429!, retryAfterSeconds: 1 } },
    ],
  });
}

/**
 * The result of one update, asked again while the server is away (a restart): only the
 * workflow's own end, or the watchdog giving up on it, settles it.
 */
async function outcomeOf(handle: EnvUpdateHandle, t0: number, givenUp: () => string | undefined, stop: Promise<never>): Promise<Outcome> {
  for (;;) {
    try {
      const result = await Promise.race([handle.result(), stop]);
      return { kind: 'completed', result, ms: performance.now() - t0 };
    } catch (err) {
      const reason = givenUp();
      if (reason) return { kind: 'other', reason };
      if (err instanceof WorkflowFailedError) return { kind: 'failed', reason: failureMessage(err) };
      if (err instanceof BenchFailure) throw err;
      await Promise.race([sleep(1000), stop]);
    }
  }
}

const envRecord = (p: Prepared) => Object.fromEntries(p.env.map((v) => [v.key, v.value]));

async function main(): Promise<number> {
  let opts: ChaosOptions;
  try {
    const parsed = parseChaosOptions(process.argv.slice(2));
    if (parsed === 'help') {
      out(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    if (!(err instanceof ChaosUsageError)) throw err;
    progress(`${err.message}\n${USAGE}`);
    return 2;
  }
  installQuietRuntime([]);
  const interrupt = interruptible({ say: progress, onceMore: 'once more', failure: (message) => new BenchFailure(message) });
  const { step, interrupted } = interrupt;
  const session = new LocalSession({ name: 'chaos', say: progress, step });
  const stackLog: string[] = [];
  let pool: WorkerPool | undefined;
  let proxy: RpcFaultProxy | undefined;
  let settledAll = false;
  const background: Promise<unknown>[] = [];
  let failed = true;
  const runStarted = performance.now();
  try {
    const total = opts.apps * opts.cvmsPerApp;
    progress(`chaos: ${opts.apps} apps × ${opts.cvmsPerApp} CVMs = ${total} updates, seed ${opts.seed}, data in ${session.dataDir}`);
    const stack = await session.startStack({ blockTime: opts.blockTime, log: (l) => stackLog.push(l) });
    const rpcUrl = stack.info.rpcUrl;
    const sim = new SimAdminClient(stack.env.SIM_URL ?? stack.env.PHALA_API_URL!, stack.env.SIM_ADMIN_TOKEN!);

    progress(`deploying ${opts.apps} app contracts owned by the signer and creating ${total} CVMs…`);
    const appIds = await step(
      deploySignerApps(
        stack,
        Array.from({ length: opts.apps }, (_, i) => `chaos-${i + 1}`),
      ),
    );
    const apps = await step(createFleet(sim, appIds, opts.cvmsPerApp, { label: 'chaos' }));
    const prepared = apps.flatMap((a) => a.cvms);

    if (opts.built) {
      progress('compiling the worker (npm run build) to restart it from dist/, as the image runs it…');
      await step(buildDist());
    }
    progress(`bundling the workflows, starting the RPC fault proxy and ${opts.workers} worker processes…`);
    const bundlePath = await step(workerBundle(session.dataDir, opts.built));
    proxy = await step(startRpcFaultProxy({ upstream: rpcUrl, rate: opts.rpcFaultRate, seed: opts.seed }));
    // Deeper than the reorg: a registration it removes was never taken as final.
    const confirmations = opts.reorgDepth + 1;
    pool = new WorkerPool({
      count: opts.workers,
      env: {
        ...process.env,
        ...stack.env,
        TEMPORAL_TASK_QUEUE: session.taskQueue,
        LOG_LEVEL: 'INFO',
        CHAIN_RPC_URL: proxy.url,
        CHAIN_CONFIRMATIONS: `${stack.info.chainId}=${confirmations}`,
      },
      bundlePath,
      logDir: session.dataDir,
      say: progress,
      built: opts.built,
    });
    await step(pool.start());
    const client: Client = await step(session.client(stack));
    await step(injectApiFaults(sim, opts.apiFaultRate, opts.seed));

    // ---- the run ------------------------------------------------------------------------
    const fromBlock = await step(chainClient(rpcUrl).getBlockNumber({ cacheTime: 0 }));
    progress(`starting ${total} updates at once; faults from now on…`);
    const t0 = performance.now();
    const started = await step(
      Promise.all(
        prepared.map(async (p, i) => {
          try {
            const { handle } = await startEnvUpdate(
              client,
              { cvmId: p.cvm.id, env: p.env, allowedKeys: p.allowedKeys, requestId: `chaos-${i + 1}-${randomBytes(4).toString('hex')}` },
              { taskQueue: session.taskQueue },
            );
            return { p, handle };
          } catch (err) {
            return { p, error: failureMessage(err) };
          }
        }),
      ),
    );
    const until = () => settledAll || interrupt.signal.aborted;
    pool.startKilling(opts.killEveryS * 1000, opts.maxKills);
    const restart = (async () => {
      await Promise.race([sleep(opts.temporalRestartAfterS * 1000), interrupted]);
      if (until()) return { atMs: undefined as number | undefined, downMs: 0 };
      const at = performance.now();
      progress(`  restarting the Temporal server (${((at - t0) / 1000).toFixed(1)} s in)…`);
      await stack.restartTemporal();
      return { atMs: at - t0, downMs: performance.now() - at };
    })();
    const drop = dropOneTransaction(rpcUrl, stack.info.signerAddress, until, t0).then((d: DropFault) => {
      if (d.hash) progress(`  dropped the pooled registration ${d.hash} (${((d.atMs ?? 0) / 1000).toFixed(1)} s in)`);
      return d;
    });
    const reorg = reorgRegistrations(rpcUrl, appIds, opts.reorgDepth, until, t0, drop).then((r: ReorgFault) => {
      if (r.registrationsRemoved) {
        progress(
          `  reorg of depth ${r.depth} removed ${r.registrationsRemoved} registration(s) (${((r.atMs ?? 0) / 1000).toFixed(1)} s in)`,
        );
      }
      return r;
    });
    background.push(restart, drop, reorg);

    const givenUp = new Map<string, string>();
    const stopWatch = watchFleet(
      { client },
      prepared.map((p) => p.cvm.id),
      (cvmId, reason) => {
        if (givenUp.has(cvmId)) return;
        givenUp.set(cvmId, reason);
        void (async () => {
          // Where it stood, for the report: the workflow id and phase say what to look at.
          const s = await getEnvUpdateStatus(client, cvmId).catch(() => undefined);
          if (s) givenUp.set(cvmId, `${reason} (phase ${s.phase}${s.lastError ? `, last error: ${s.lastError}` : ''})`);
          await abortEnvUpdate(client, cvmId, `chaos run: ${reason}`).catch(() => {});
        })();
      },
      opts.timeoutS * 1000,
    );
    let settled = 0;
    let lastSettled = t0;
    const outcomes = await step(
      Promise.all(
        started.map(async (s): Promise<Outcome> => {
          const o: Outcome = s.handle
            ? await outcomeOf(s.handle, t0, () => givenUp.get(s.p.cvm.id), interrupted)
            : { kind: 'other', reason: `not started: ${s.error}` };
          lastSettled = performance.now();
          if (++settled % 10 === 0 || settled === started.length) progress(`  ${settled}/${started.length} settled`);
          return o;
        }),
      ),
    ).finally(stopWatch);
    const wallMs = lastSettled - t0;
    settledAll = true;
    pool.stopKilling();
    const [restarted, dropped, reorged] = await step(Promise.all([restart, drop, reorg]));
    await step(sim.removeFaults());
    proxy.setRate(0);

    // ---- checks ---------------------------------------------------------------------------
    progress('checking the chain, the CVMs, histories, logs and CLI output…');
    const toBlock = await step(chainClient(rpcUrl).getBlockNumber({ cacheTime: 0 }));
    const registrations = await step(registrationsMined(rpcUrl, appIds, fromBlock + 1n, toBlock));
    const duplicates = [...registrations.byPair].filter(([, n]) => n > 1).map(([pair, n]) => ({ pair, registrations: n }));
    const completed = outcomes.flatMap((o, i) => (o.kind === 'completed' ? [{ p: started[i]!.p, result: o.result }] : []));
    const unregistered = completed
      .filter(({ p, result }) => !result.composeHash || (registrations.byPair.get(pairKey(p.cvm.appId, result.composeHash)) ?? 0) === 0)
      .map(({ p }) => p.cvm.id);
    const mismatches: { cvmId: string; keys: string[] }[] = [];
    for (const { p } of completed) {
      const applied = (await step(sim.appliedEnv(p.cvm.id))).env;
      const want = envRecord(p);
      const wrong = [...new Set([...Object.keys(want), ...Object.keys(applied)])].filter((k) => applied[k] !== want[k]);
      if (wrong.length > 0) mismatches.push({ cvmId: p.cvm.id, keys: wrong });
    }

    const needles: Needle[] = [
      ...prepared.flatMap((p) => p.env.map((v) => ({ label: `env ${v.key} of ${p.cvm.id}`, value: v.value }))),
      { label: 'signer private key', value: stack.env.SIGNER_PRIVATE_KEY!.replace(/^0x/, '') },
      { label: 'Phala API key', value: stack.env.PHALA_API_KEY! },
    ];
    const cliCvms = prepared.slice(0, opts.short ? 2 : 5).map((p) => p.cvm.id);
    const cli = await step(scanCliOutput({ envFile: join(session.dataDir, 'stack.env'), cvmIds: cliCvms, needles }));
    const histories = await step(scanHistories(client, needles));
    await pool.stop();
    const logs = scanFiles([...pool.logFiles, join(session.dataDir, 'temporal.log')], needles);

    const failures: Record<string, number> = {};
    const others: Record<string, number> = {};
    outcomes.forEach((o) => {
      if (o.kind === 'failed') countFailure(failures, new Error(o.reason));
      if (o.kind === 'other') countFailure(others, new Error(o.reason));
    });
    const hits: Record<string, Hit[]> = {
      history: histories.historyHits,
      visibility: histories.visibilityHits,
      logs: logs.hits,
      cli: cli.hits,
    };
    const report: ChaosReport = {
      options: opts,
      requiredConfirmations: confirmations,
      updates: total,
      completed: completed.length,
      failed: outcomes.filter((o) => o.kind === 'failed').length,
      other: outcomes.filter((o) => o.kind === 'other').length,
      failures,
      others,
      notCompleted: outcomes.flatMap((o, i) =>
        o.kind === 'completed' ? [] : [{ workflowId: workflowIdForCvm(started[i]!.p.cvm.id), kind: o.kind, reason: o.reason }],
      ),
      registrations: {
        expected: opts.apps,
        mined: registrations.mined,
        distinct: registrations.distinct,
        duplicates,
        unregistered,
      },
      mismatches,
      plaintext: hits,
      scanned: {
        secrets: needles.length,
        workflows: histories.workflows,
        logFiles: logs.files,
        logBytes: logs.bytes,
        cliCommands: cli.commands,
        cliFailures: cli.failures,
        searchAttributes: histories.searchAttributeNames,
      },
      maxHistoryLength: histories.maxHistoryLength,
      longestHistoryWorkflowId: histories.longestWorkflowId,
      faults: {
        workers: { ...pool.stats },
        temporalRestart: restarted,
        api: { rate: opts.apiFaultRate },
        rpc: { rate: opts.rpcFaultRate, calls: proxy.stats.calls, faulted: proxy.stats.faulted },
        drop: dropped,
        reorg: reorged,
      },
      wallMs,
      runMs: performance.now() - runStarted,
    };
    const missed = printReport(report, out);
    if (missed.length > 0) {
      progress(`chaos: targets missed: ${missed.join('; ')}`);
      progress(`logs kept in ${session.dataDir}`);
      return 1;
    }
    failed = false;
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    progress(interrupt.signal.aborted ? 'chaos run interrupted' : `chaos run FAILED: ${message.split('\n')[0]}`);
    if (!(err instanceof BenchFailure) && err instanceof Error && err.stack) progress(err.stack);
    if (!interrupt.signal.aborted && stackLog.length > 0) progress(`stack log:\n  ${stackLog.slice(-40).join('\n  ')}`);
    return interrupt.signal.aborted ? 130 : 1;
  } finally {
    settledAll = true;
    await Promise.all(background.map((b) => b.catch(() => {})));
    await pool?.stop().catch(() => {});
    await proxy?.close().catch(() => {});
    await session.close(failed && !interrupt.signal.aborted);
    interrupt.dispose();
  }
}

process.exit(await main());
