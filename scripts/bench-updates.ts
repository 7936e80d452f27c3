// `npm run bench`: latency, throughput, a fleet of updates with one signer key beside the same
// fleet through the official SDK, and memory, on a throwaway local stack (Temporal dev server,
// anvil, Phala Cloud simulator) with the worker in a child process. Progress goes to stderr;
// stdout carries the tables and, last, one JSON line with every figure.
import { availableParallelism } from 'node:os';
import { buildDist } from '../src/dev/build-dist.ts';
import type { Hex } from 'viem';
import { getEnvUpdateStatus } from '../src/client.ts';
import { installQuietRuntime, interruptible, LocalSession } from '../src/dev/local-session.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { runBaselineProcess, type BaselineOutput } from './bench/baseline-process.ts';
import type { BaselineSetup, BaselineUpdate } from './bench/baseline.ts';
import { BlockWatcher, chainClient, deploySignerApps, registrationsMined } from './bench/chain.ts';
import { createFleet, type FleetApp } from './bench/fleet-setup.ts';
import { countFailure, runFleetThroughService, type ScenarioRun } from './bench/fleet.ts';
import { floorOf, measureRoundTrips, type Floor } from './bench/floor.ts';
import { profileFigures, profileHistories, profileTable, type HistoryProfile } from './bench/history-profile.ts';
import { workflowIdForCvm } from '../src/workflows/definitions.ts';
import { signerWorkflowId } from '../src/workflows/signer-manager/definitions.ts';
import { BenchUsageError, parseBenchOptions, USAGE, type BenchOptions } from './bench/options.ts';
import { readProcessMemory, resetPeak } from './bench/process-memory.ts';
import { cpuSecondsBetween, cpuTable, processRole, processTreeCpu } from './bench/process-cpu.ts';
import { floorTable, scenarioFigures, sideBySide, type ScenarioFigures } from './bench/report.ts';
import {
  composeHashAddedCounts,
  KINDS,
  prepare,
  runUpdate,
  sequentialSection,
  throughputSection,
  type Kind,
  type Sample,
} from './bench/sequential.ts';
import { ms, round, table } from './bench/stats.ts';
import { BenchFailure, checkOnchainNewKey, startUpdate, awaitResult, type Ctx, type Prepared } from './bench/updates.ts';

const progress = (line: string) => process.stderr.write(`${line}\n`);
const out = (line = '') => process.stdout.write(`${line}\n`);

const toBaselineUpdate = (p: Prepared): BaselineUpdate => ({ cvmId: p.cvm.id, env: p.env, envKeys: p.allowedKeys });

function baselineRun(output: BaselineOutput, registrations: ScenarioRun['registrations']): ScenarioRun {
  const failures: Record<string, number> = {};
  for (const o of output.fleet) if (!o.ok) countFailure(failures, new Error(o.error ?? 'failed'));
  return {
    updates: output.fleet.length,
    succeeded: output.fleet.filter((o) => o.ok).length,
    failures,
    wallMs: output.fleetWallMs,
    perUpdateMs: output.fleet.filter((o) => o.ok).map((o) => o.ms),
    registrations,
    signed: output.fleet.reduce((a, o) => a + o.signed, 0),
    peakRssMb: output.peakRssMb,
  };
}

async function main(): Promise<number> {
  let opts: BenchOptions;
  try {
    const parsed = parseBenchOptions(process.argv.slice(2));
    if (parsed === 'help') {
      out(USAGE);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    progress(`${err.message}\n${USAGE}`);
    return 2;
  }
  // Our SIGINT handler owns shutdown.
  installQuietRuntime([]);
  const interrupt = interruptible({ say: progress, onceMore: 'once more', failure: (message) => new BenchFailure(message) });
  const { step, interrupted } = interrupt;
  const session = new LocalSession({ name: 'bench', say: progress, step });
  // Stack chatter is kept and shown only if something goes wrong.
  const stackLog: string[] = [];
  let blocks: BlockWatcher | undefined;
  let failed = true;
  try {
    progress(`starting the local stack in ${session.dataDir} (block time ${opts.blockTime} s)…`);
    const stack = await session.startStack({ blockTime: opts.blockTime, log: (l) => stackLog.push(l) });
    const rpcUrl = stack.info.rpcUrl;
    const signerApp =
      stack.info.apps.find((a) => a.ownerIsSigner && a.name === 'app-signer-1') ?? stack.info.apps.find((a) => a.ownerIsSigner);
    if (!signerApp) throw new BenchFailure('the stack deployed no app contract owned by the signer');
    const sim = new SimAdminClient(stack.env.SIM_URL ?? stack.env.PHALA_API_URL!, stack.env.SIM_ADMIN_TOKEN!);
    const applyDelayMs = opts.applyDelayMs ?? (await step(sim.config())).applyDelayMs;

    if (!opts.fromSource) {
      progress('compiling the worker (npm run build) to run it from dist/, as the image does…');
      await step(buildDist());
    }
    progress('bundling the workflows and starting the worker process…');
    const { client, worker } = await session.startWorkerProcessAndClient(stack, {
      built: !opts.fromSource,
      nodeArgs: opts.workerNodeArgs,
    });
    const ctx: Ctx = {
      client,
      sim,
      taskQueue: session.taskQueue,
      signerAppId: signerApp.appId,
      applyDelayMs: opts.applyDelayMs,
      interrupted,
    };
    const workerAtStart = readProcessMemory(worker.pid);

    // Fleet apps: A for the service, A for the baseline, one each for the single updates, one for the round-trip probe.
    let fleetApps: FleetApp[] = [];
    let baselineApps: FleetApp[] = [];
    let singleApps: FleetApp[] = [];
    if (opts.apps > 0) {
      const n = opts.apps;
      progress(`deploying ${2 * n + 3} app contracts and creating ${2 * n * opts.cvmsPerApp + 3} CVMs…`);
      const names = [
        ...Array.from({ length: n }, (_, i) => `bench-fleet-${i + 1}`),
        ...Array.from({ length: n }, (_, i) => `bench-baseline-${i + 1}`),
        'bench-single',
        'bench-baseline-single',
        'bench-floor-probe',
      ];
      const ids = await step(deploySignerApps(stack, names));
      const delay = opts.applyDelayMs !== undefined ? { applyDelayMs: opts.applyDelayMs } : {};
      fleetApps = await step(createFleet(sim, ids.slice(0, n), opts.cvmsPerApp, { label: 'fleet', ...delay }));
      baselineApps = await step(createFleet(sim, ids.slice(n, 2 * n), opts.cvmsPerApp, { label: 'base', ...delay }));
      singleApps = await step(createFleet(sim, ids.slice(2 * n), 1, { label: 'single', ...delay }));
    }

    // One uncounted update first: the first workflow task and activity pay for JIT and caches.
    progress('warm-up: 1 Phala-KMS update (not counted)…');
    await step(runUpdate(ctx, 'phala', await step(prepare(ctx, 'phala'))));

    // ---- 1. sequential and 2. throughput ---------------------------------------------------
    const workerPeakReset = resetPeak(worker.pid);
    const samples = new Map<Kind, Sample[]>(KINDS.map((k) => [k.kind, []]));
    for (let i = 1; i <= opts.runs; i++) {
      // Round-robin, so a drift over the run (a growing chain, a warming cache) hits every kind alike.
      for (const { kind, label } of KINDS) {
        const prepared = await step(prepare(ctx, kind));
        const s = await step(runUpdate(ctx, kind, prepared, undefined, true));
        samples.get(kind)!.push(s);
        progress(`  run ${i}/${opts.runs} ${label}: ${ms(s.wallMs)} ms (workflow ${ms(s.result.timings.totalMs)} ms)`);
      }
    }
    let concurrent: Sample[] = [];
    let batchWallMs = Number.NaN;
    if (opts.concurrent > 0) {
      progress(`throughput: ${opts.concurrent} on-chain updates of distinct apps' CVMs at once, one signer key…`);
      const batch = await step(Promise.all(Array.from({ length: opts.concurrent }, () => prepare(ctx, 'onchain-new-key'))));
      const t0 = performance.now();
      concurrent = await step(Promise.all(batch.map((p) => runUpdate(ctx, 'onchain-new-key', p, t0))));
      batchWallMs = performance.now() - t0;
    }
    const workerSections = readProcessMemory(worker.pid);
    const notOnce = (counts: Map<string, number>) => [...counts].filter(([, n]) => n !== 1);
    const throughputBad = notOnce(
      await step(
        composeHashAddedCounts(
          rpcUrl,
          signerApp.appId,
          concurrent.map((s) => s.result.composeHash!),
        ),
      ),
    );
    const sequentialBad = notOnce(
      await step(
        composeHashAddedCounts(
          rpcUrl,
          signerApp.appId,
          samples.get('onchain-new-key')!.map((s) => s.result.composeHash!),
        ),
      ),
    );

    // ---- 3. fleet and baseline -------------------------------------------------------------
    let fleet: ScenarioFigures | undefined;
    let fleetProfile: HistoryProfile | undefined;
    let fleetCpu: Record<string, number> | undefined;
    let baselineCpu: Record<string, number> | undefined;
    let managerProfile: HistoryProfile | undefined;
    let baseline: ScenarioFigures | undefined;
    let floor: Floor | undefined;
    let baselineFloor: Floor | undefined;
    let single: { ms: number; confirmations: number } | undefined;
    let baselineSingleMs: number | null = null;
    if (opts.apps > 0) {
      const [singleApp, baselineSingleApp, probeApp] = singleApps;
      progress('floor: measuring the API round trips of one update…');
      blocks = new BlockWatcher(rpcUrl);
      blocks.start();
      const rtt = await step(measureRoundTrips(stack.env, probeApp!.cvms[0]!.cvm));

      progress('one on-chain update alone (new allowed key, so a registration)…');
      const one = singleApp!.cvms[0]!;
      const t0 = performance.now();
      const result = await awaitResult(ctx, await step(startUpdate(ctx, one)), one.cvm.id);
      const singleMs = performance.now() - t0;
      checkOnchainNewKey(result);
      const confirmations = (await step(getEnvUpdateStatus(client, one.cvm.id))).requiredConfirmations ?? 1;
      single = { ms: singleMs, confirmations };
      const blockTimeMs = opts.blockTime * 1000;
      floor = floorOf({ startedAt: t0, rtt, blocks, blockTimeMs, confirmations, applyDelayMs });
      progress(`  ${ms(singleMs)} ms (floor ${ms(floor.floorMs)} ms)`);

      progress(`fleet: ${opts.apps} apps × ${opts.cvmsPerApp} CVMs = ${opts.apps * opts.cvmsPerApp} updates at once through the service…`);
      const cpuBeforeFleet = processTreeCpu();
      const fleetRun = await step(
        runFleetThroughService(ctx, fleetApps, {
          rpcUrl,
          workerPid: worker.pid,
          signer: { chainId: stack.info.chainId, address: stack.info.signerAddress },
          progress,
        }),
      );
      fleetCpu = cpuSecondsBetween(cpuBeforeFleet, processTreeCpu(), processRole(worker.pid));
      fleet = scenarioFigures(fleetRun, singleMs, fleetApps.length);
      progress(`  ${fleet.succeeded}/${fleet.updates} succeeded in ${ms(fleet.wallMs)} ms`);
      fleetProfile = await step(
        profileHistories(
          client,
          fleetApps.flatMap((a) => a.cvms.map((c) => workflowIdForCvm(c.cvm.id))),
        ),
      );
      managerProfile = await step(profileHistories(client, [signerWorkflowId(stack.info.chainId, stack.info.signerAddress)]));

      if (opts.baseline) {
        progress(
          `baseline: one update alone, then the same ${opts.apps * opts.cvmsPerApp} updates through @phala/cloud + viem, all at once…`,
        );
        const setup: BaselineSetup = {
          apiUrl: stack.env.PHALA_API_URL!,
          apiKey: stack.env.PHALA_API_KEY!,
          rpcUrl,
          chainId: stack.info.chainId,
          blockTimeMs,
          confirmations,
        };
        const from = await step(chainClient(rpcUrl).getBlockNumber({ cacheTime: 0 }));
        const cpuBeforeBaseline = processTreeCpu();
        const output = await step(
          runBaselineProcess(
            {
              setup,
              single: toBaselineUpdate(baselineSingleApp!.cvms[0]!),
              fleet: baselineApps.flatMap((a) => a.cvms.map(toBaselineUpdate)),
            },
            stack.env.SIGNER_PRIVATE_KEY as Hex,
            interrupt.signal,
          ),
        );
        baselineCpu = cpuSecondsBetween(cpuBeforeBaseline, processTreeCpu(), processRole(worker.pid));
        const to = await step(chainClient(rpcUrl).getBlockNumber({ cacheTime: 0 }));
        const registrations = await step(
          registrationsMined(
            rpcUrl,
            baselineApps.map((a) => a.appId),
            from + 1n,
            to,
          ),
        );
        baselineSingleMs = output.single.ok ? output.single.ms : null;
        baseline = scenarioFigures(baselineRun(output, registrations), baselineSingleMs, baselineApps.length);
        const startedAt = output.singleStartedAtEpochMs - performance.timeOrigin;
        baselineFloor = floorOf({ startedAt, rtt, blocks, blockTimeMs, confirmations, applyDelayMs });
        progress(`  ${baseline.succeeded}/${baseline.updates} succeeded in ${ms(baseline.wallMs)} ms`);
      }
      blocks.stop();
    }

    // ---- output ----------------------------------------------------------------------------
    const requiredConfirmations = single?.confirmations ?? samples.get('onchain-new-key')![0]?.status.requiredConfirmations ?? null;
    out();
    out(
      `durable-cvm-envs bench · block time ${opts.blockTime} s · ${requiredConfirmations ?? '?'} confirmations · ` +
        `CVM apply delay ${applyDelayMs} ms${opts.applyDelayMs === undefined ? ' (simulator default)' : ''} · ` +
        `runs ${opts.runs} per kind · concurrent ${opts.concurrent} · fleet ${opts.apps} × ${opts.cvmsPerApp}`,
    );
    let sequential: ReturnType<typeof sequentialSection> | undefined;
    if (opts.runs > 0) {
      out();
      sequential = sequentialSection(samples, out);
    }
    let throughput: ReturnType<typeof throughputSection> | undefined;
    if (opts.concurrent > 0) {
      out();
      throughput = throughputSection({ concurrent, batchWallMs, throughputBad, sequentialBad }, out);
    }
    if (fleet && floor && single) {
      out();
      out(`3. Fleet: ${opts.apps} apps × ${opts.cvmsPerApp} CVMs sharing each app's compose, all started at once, one signer key`);
      for (const l of sideBySide(fleet, baseline)) out(`  ${l}`);
      for (const [label, f] of [
        ['durable-cvm-envs', fleet],
        ['baseline', baseline],
      ] as const) {
        for (const [reason, n] of Object.entries(f?.failures ?? {})) out(`  ${label} failed ×${n}: ${reason}`);
      }
      out();
      out('4. One on-chain update against its floor (next block + remaining confirmations + apply delay + API round trips)');
      for (const l of floorTable({ ours: single.ms, baseline: baselineSingleMs }, floor)) out(`  ${l}`);
      if (baselineFloor && baselineSingleMs !== null) {
        out(
          `  (the baseline's own floor, with the block wait of its run: ${ms(baselineFloor.floorMs)} ms → ${(baselineSingleMs / baselineFloor.floorMs).toFixed(2)}×)`,
        );
      }
    }
    out();
    out('5. Peak RSS of the worker process (VmHWM; reset before each part when the kernel allows)');
    for (const l of table(
      ['', 'MB'],
      [
        ['start-up (prebuilt workflow bundle)', String(workerAtStart.peakMb)],
        ['sequential and throughput', workerPeakReset && opts.runs + opts.concurrent > 0 ? String(workerSections.peakMb) : '—'],
        ['fleet', fleet?.workerPeakRssMb === null || fleet === undefined ? '—' : String(fleet.workerPeakRssMb)],
      ],
    ))
      out(`  ${l}`);
    if (fleetProfile) {
      out();
      out("6. Where the fleet's time went (from the histories; the manager's is its last run)");
      for (const l of table(['', 'update workflows', 'signer manager'], profileTable(fleetProfile, managerProfile))) out(`  ${l}`);
    }
    if (fleetCpu && fleet) {
      out();
      out(`7. CPU spent while the fleet ran, in core seconds (this machine has ${availableParallelism()} cores)`);
      for (const l of table(['', 'durable-cvm-envs', 'baseline'], cpuTable(fleetCpu, baselineCpu, fleet, baseline))) out(`  ${l}`);
    }

    const summary = {
      options: {
        runs: opts.runs,
        concurrent: opts.concurrent,
        apps: opts.apps,
        cvmsPerApp: opts.cvmsPerApp,
        blockTimeS: opts.blockTime,
        applyDelayMs,
        requiredConfirmations,
      },
      ...(sequential ? { sequential } : {}),
      ...(throughput ? { throughput } : {}),
      ...(fleet ? { fleet } : {}),
      ...(baseline ? { baseline } : {}),
      ...(fleetProfile
        ? {
            fleetProfile: { updates: profileFigures(fleetProfile), ...(managerProfile ? { manager: profileFigures(managerProfile) } : {}) },
          }
        : {}),
      ...(fleetCpu ? { fleetCpuSeconds: fleetCpu } : {}),
      ...(baselineCpu ? { baselineCpuSeconds: baselineCpu } : {}),
      ...(floor && single
        ? {
            floor: {
              floorMs: round(floor.floorMs),
              apiRoundTripsMs: round(floor.apiRoundTripsMs),
              nextBlockWaitMs: round(floor.nextBlockWaitMs),
              remainingConfirmationsMs: round(floor.remainingConfirmationsMs),
              applyDelayMs: floor.applyDelayMs,
              singleWallMs: round(single.ms),
              measuredOverFloor: round(single.ms / floor.floorMs, 2),
              ...(baselineFloor && baselineSingleMs !== null
                ? {
                    baselineFloorMs: round(baselineFloor.floorMs),
                    baselineSingleWallMs: round(baselineSingleMs),
                    baselineOverFloor: round(baselineSingleMs / baselineFloor.floorMs, 2),
                  }
                : {}),
            },
          }
        : {}),
      workerMemoryMb: {
        afterStart: workerAtStart.peakMb,
        sequentialAndThroughputPeak: workerPeakReset && opts.runs + opts.concurrent > 0 ? workerSections.peakMb : null,
        fleetPeak: fleet?.workerPeakRssMb ?? null,
      },
    };
    out();
    out(JSON.stringify(summary));

    if (throughputBad.length > 0 || sequentialBad.length > 0) {
      progress('FAIL: a compose hash of the sequential or throughput updates was not registered exactly once');
      return 1;
    }
    failed = false;
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    progress(interrupt.signal.aborted ? 'bench interrupted' : `bench FAILED: ${message.split('\n')[0]}`);
    if (!(err instanceof BenchFailure) && err instanceof Error && err.stack) progress(err.stack);
    if (!interrupt.signal.aborted && stackLog.length > 0) progress(`stack log:\n  ${stackLog.slice(-40).join('\n  ')}`);
    return interrupt.signal.aborted ? 130 : 1;
  } finally {
    blocks?.stop();
    await session.close(failed && !interrupt.signal.aborted);
    interrupt.dispose();
  }
}

process.exit(await main());
