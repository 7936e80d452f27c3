// `npm run bench`: latency, throughput and memory of env updates on a throwaway local stack
// (Temporal dev server, anvil, Phala Cloud simulator) with an in-process worker. Progress goes
// to stderr; stdout carries the tables and, last, one JSON line with every figure.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { createPublicClient, http, parseEventLogs, type Hex } from 'viem';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate, type EnvUpdateHandle } from '../src/client.ts';
import { installQuietRuntime, interruptible, LocalSession } from '../src/dev/local-session.ts';
import { SimAdminClient, type SimCvmSummary } from '../src/simulator/admin-client.ts';
import type { EnvVar, UpdateEnvResult, UpdateStatus } from '../src/workflows/definitions.ts';

class BenchFailure extends Error {}

interface Options {
  runs: number;
  concurrent: number;
  blockTime: number;
  applyDelayMs: number | undefined;
}

const USAGE =
  'usage: npm run bench -- [--runs N (5)] [--concurrent M (10)] [--block-time S (1)] [--apply-delay-ms MS (simulator default)]';

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      concurrent: { type: 'string' },
      'block-time': { type: 'string' },
      'apply-delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: string, raw: string | undefined, fallback: number | undefined, min: number, integer: boolean) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new BenchFailure(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  return {
    runs: num('runs', values.runs, 5, 1, true)!,
    concurrent: num('concurrent', values.concurrent, 10, 1, true)!,
    blockTime: num('block-time', values['block-time'], 1, 0, false)!,
    applyDelayMs: num('apply-delay-ms', values['apply-delay-ms'], undefined, 0, true),
  };
}

// ---------------------------------------------------------------------------------------
// Statistics and output
// ---------------------------------------------------------------------------------------

const progress = (line: string) => process.stderr.write(`${line}\n`);
const out = (line = '') => process.stdout.write(`${line}\n`);

function quantile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: with a handful of samples, p95 is honestly the worst one rather than an interpolation.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Distribution {
  min: number;
  median: number;
  p95: number;
  max: number;
}

function distribution(values: number[]): Distribution {
  return { min: Math.min(...values), median: median(values), p95: quantile(values, 0.95), max: Math.max(...values) };
}

const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : String(Math.round(v)));
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  // First column is a label; figures align right so digits line up.
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

class RssSampler {
  peak = process.memoryUsage().rss;
  samples = 0;
  #timer: NodeJS.Timeout | undefined;

  start(): void {
    this.peak = process.memoryUsage().rss;
    this.#timer = setInterval(() => this.sample(), 200);
    this.#timer.unref();
  }

  sample(): number {
    const rss = process.memoryUsage().rss;
    this.samples++;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------

type Kind = 'onchain-new-key' | 'onchain-same-keys' | 'phala';

const KINDS: { kind: Kind; label: string }[] = [
  { kind: 'onchain-new-key', label: 'on-chain KMS, new allowed key' },
  { kind: 'onchain-same-keys', label: 'on-chain KMS, value only' },
  { kind: 'phala', label: 'Phala KMS' },
];

interface Sample {
  kind: Kind;
  cvmId: string;
  /** Measured by this client: from before the start call until the result arrived. */
  wallMs: number;
  result: UpdateEnvResult;
  status: UpdateStatus;
  history?: HistorySpan;
}

interface HistorySpan {
  /** From WorkflowExecutionStarted to WorkflowExecutionCompleted, by the server's clock. */
  workflowMs: number;
  /** Sum of started → closed of every activity (the last attempt of each). */
  activityRunMs: number;
}

interface Ctx {
  client: Client;
  sim: SimAdminClient;
  taskQueue: string;
  signerAppId: string;
  applyDelayMs: number | undefined;
  interrupted: Promise<never>;
}

const secretValue = () => randomBytes(18).toString('base64url');

/** A fresh CVM and an env for it; key names carry a per-CVM suffix so every compose hash is distinct. */
async function prepare(ctx: Ctx, kind: Kind): Promise<{ cvm: SimCvmSummary; env: EnvVar[]; allowedKeys?: string[] }> {
  const tag = randomBytes(4).toString('hex').toUpperCase();
  const existing = [`BENCH_DB_URL_${tag}`, `BENCH_TOKEN_${tag}`];
  const cvm = await ctx.sim.createCvm({
    kms: kind === 'phala' ? 'phala' : 'onchain',
    ...(kind === 'phala' ? {} : { appId: ctx.signerAppId }),
    name: `bench-${kind}-${tag.toLowerCase()}`,
    allowedEnvs: existing,
    ...(ctx.applyDelayMs !== undefined ? { applyDelayMs: ctx.applyDelayMs } : {}),
  });
  const keys = kind === 'onchain-new-key' ? [...existing, `BENCH_NEW_${tag}`] : existing;
  // Explicit allowedKeys equal to the env's keys: the value-only kinds must not move the compose hash.
  return { cvm, env: keys.map((key) => ({ key, value: secretValue() })), allowedKeys: keys };
}

function failureMessage(err: unknown): string {
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

const UPDATE_TIMEOUT_MS = 5 * 60_000;

/**
 * Waits for the result, but gives up on an update parked for an operator: nobody will signal
 * it here, so waiting would only hang the benchmark.
 */
async function awaitResult(ctx: Ctx, handle: EnvUpdateHandle, cvmId: string): Promise<UpdateEnvResult> {
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

function checkPath(kind: Kind, r: UpdateEnvResult): void {
  // A run that took another path than its kind says would measure the wrong thing.
  const twoPhase = r.transactionHash !== undefined;
  if (kind === 'onchain-new-key' && (!twoPhase || !r.allowedEnvsChanged)) {
    throw new BenchFailure(`CVM ${r.cvmId}: a new allowed key finished without a registration transaction`);
  }
  if (kind !== 'onchain-new-key' && twoPhase) throw new BenchFailure(`CVM ${r.cvmId}: a ${kind} update sent a registration transaction`);
  if (kind === 'phala' ? r.kms !== 'phala' : r.kms !== 'onchain') throw new BenchFailure(`CVM ${r.cvmId} reported ${r.kms} KMS for a ${kind} update`);
  if (!r.applied) throw new BenchFailure(`CVM ${r.cvmId}: the update finished without being applied`);
}

const tsMs = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  ts ? Number(String(ts.seconds ?? 0)) * 1000 + (ts.nanos ?? 0) / 1e6 : Number.NaN;

/**
 * The workflow's apiMs/chainMs are read in workflow time around each await, so they already hold
 * the scheduling of every activity and the workflow tasks in between; only history separates
 * an activity's own run time from Temporal's share.
 */
async function historySpan(handle: EnvUpdateHandle): Promise<HistorySpan> {
  const { events } = await handle.fetchHistory();
  let first = Number.NaN;
  let last = Number.NaN;
  let activityRunMs = 0;
  const startedAt = new Map<string, number>();
  for (const e of events ?? []) {
    const t = tsMs(e.eventTime);
    if (e.workflowExecutionStartedEventAttributes) first = t;
    if (e.workflowExecutionCompletedEventAttributes) last = t;
    const started = e.activityTaskStartedEventAttributes;
    if (started) startedAt.set(String(started.scheduledEventId), t);
    const closed =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes ??
      e.activityTaskCanceledEventAttributes;
    const from = closed ? startedAt.get(String(closed.scheduledEventId)) : undefined;
    if (from !== undefined) activityRunMs += t - from;
  }
  return { workflowMs: last - first, activityRunMs };
}

async function runUpdate(
  ctx: Ctx,
  kind: Kind,
  prepared: { cvm: SimCvmSummary; env: EnvVar[]; allowedKeys?: string[] },
  startAt?: number,
  withHistory = false,
): Promise<Sample> {
  const { cvm, env, allowedKeys } = prepared;
  const t0 = startAt ?? performance.now();
  const { handle } = await startEnvUpdate(
    ctx.client,
    { cvmId: cvm.id, env, allowedKeys, requestId: `bench-${randomBytes(6).toString('hex')}` },
    { taskQueue: ctx.taskQueue },
  );
  const result = await awaitResult(ctx, handle, cvm.id);
  const wallMs = performance.now() - t0;
  checkPath(kind, result);
  const status = await getEnvUpdateStatus(ctx.client, cvm.id);
  return { kind, cvmId: cvm.id, wallMs, result, status, ...(withHistory ? { history: await historySpan(handle) } : {}) };
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

const phaseMs = (s: Sample, phase: string) => s.result.timings.phases.filter((p) => p.phase === phase).reduce((a, p) => a + p.ms, 0);

interface Split {
  workflowTotalMs: number;
  /** apiMs includes the observeApplied wait; this is apiMs without it. */
  apiMs: number;
  apiInclApplyMs: number;
  chainMs: number;
  cvmApplyMs: number;
  orchestrationMs: number;
  clientOverheadMs: number;
  activityRunMs: number;
  temporalOverheadMs: number;
}

function split(s: Sample): Split {
  const t = s.result.timings;
  const total = t.totalMs ?? 0;
  const apply = phaseMs(s, 'applying');
  return {
    workflowTotalMs: total,
    apiMs: t.apiMs - apply,
    apiInclApplyMs: t.apiMs,
    chainMs: t.chainMs,
    cvmApplyMs: apply,
    orchestrationMs: total - t.apiMs - t.chainMs,
    clientOverheadMs: s.wallMs - total,
    activityRunMs: s.history?.activityRunMs ?? Number.NaN,
    temporalOverheadMs: s.history ? s.history.workflowMs - s.history.activityRunMs : Number.NaN,
  };
}

function medianSplit(samples: Sample[]): Split {
  const splits = samples.map(split);
  const m = (k: keyof Split) => median(splits.map((x) => x[k]));
  return {
    workflowTotalMs: m('workflowTotalMs'),
    apiMs: m('apiMs'),
    apiInclApplyMs: m('apiInclApplyMs'),
    chainMs: m('chainMs'),
    cvmApplyMs: m('cvmApplyMs'),
    orchestrationMs: m('orchestrationMs'),
    clientOverheadMs: m('clientOverheadMs'),
    activityRunMs: m('activityRunMs'),
    temporalOverheadMs: m('temporalOverheadMs'),
  };
}

/** Phases in the order the workflow enters them; a phase missing from a run counts 0 there. */
function medianPhases(samples: Sample[]): Record<string, number> {
  const order: string[] = [];
  for (const s of samples) for (const p of s.result.timings.phases) if (!order.includes(p.phase)) order.push(p.phase);
  return Object.fromEntries(order.map((phase) => [phase, median(samples.map((s) => phaseMs(s, phase)))]));
}

async function composeHashAddedCounts(rpcUrl: string, appId: string, hashes: string[]): Promise<Map<string, number>> {
  const chain = createPublicClient({ transport: http(rpcUrl) });
  const logs = await chain.getLogs({ address: appId as Hex, fromBlock: 0n, toBlock: 'latest' });
  const norm = (h: string) => `0x${h.replace(/^0x/i, '').toLowerCase()}`;
  const counts = new Map(hashes.map((h) => [norm(h), 0]));
  for (const e of parseEventLogs({ abi: dstackAppAbi, logs, eventName: 'ComposeHashAdded' })) {
    const h = norm(e.args.composeHash);
    if (counts.has(h)) counts.set(h, counts.get(h)! + 1);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    progress(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const rssAtStart = process.memoryUsage().rss;
  // Our SIGINT handler owns shutdown: the runtime's own would stop the worker under our feet.
  installQuietRuntime([]);
  const interrupt = interruptible({ say: progress, onceMore: 'once more', failure: (message) => new BenchFailure(message) });
  const { step, interrupted } = interrupt;
  const session = new LocalSession({ name: 'bench', say: progress, step });
  // Stack chatter is kept and shown only if something goes wrong.
  const stackLog: string[] = [];
  const sampler = new RssSampler();
  let failed = true;
  try {
    progress(`starting the local stack in ${session.dataDir} (block time ${opts.blockTime} s)…`);
    const stack = await session.startStack({ blockTime: opts.blockTime, log: (l) => stackLog.push(l) });
    const signerApp = stack.info.apps.find((a) => a.ownerIsSigner && a.name === 'app-signer-1') ?? stack.info.apps.find((a) => a.ownerIsSigner);
    if (!signerApp) throw new BenchFailure('the stack deployed no app contract owned by the signer');
    const sim = new SimAdminClient(stack.env.SIM_URL ?? stack.env.PHALA_API_URL!, stack.env.SIM_ADMIN_TOKEN!);
    const simDefaultApplyDelayMs = (await step(sim.config())).applyDelayMs;

    progress('bundling the workflows and starting the worker…');
    const client = await session.startWorkerAndClient(stack);
    const ctx: Ctx = { client, sim, taskQueue: session.taskQueue, signerAppId: signerApp.appId, applyDelayMs: opts.applyDelayMs, interrupted };
    const applyDelayMs = opts.applyDelayMs ?? simDefaultApplyDelayMs;

    const rssBefore = process.memoryUsage().rss;
    sampler.start();

    // One uncounted update first: the first workflow task and activity pay for JIT and caches.
    progress('warm-up: 1 Phala-KMS update (not counted)…');
    await step(runUpdate(ctx, 'phala', await step(prepare(ctx, 'phala'))));

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

    progress(`throughput: ${opts.concurrent} on-chain updates with new keys at once, one signer key…`);
    const batch = await step(Promise.all(Array.from({ length: opts.concurrent }, () => prepare(ctx, 'onchain-new-key'))));
    const t0 = performance.now();
    const concurrent = await step(Promise.all(batch.map((p) => runUpdate(ctx, 'onchain-new-key', p, t0))));
    const batchWallMs = performance.now() - t0;
    const rssAfter = sampler.sample();
    sampler.stop();

    const rpcUrl = stack.info.rpcUrl;
    const throughputCounts = await step(composeHashAddedCounts(rpcUrl, signerApp.appId, concurrent.map((s) => s.result.composeHash!)));
    const sequentialCounts = await step(
      composeHashAddedCounts(rpcUrl, signerApp.appId, samples.get('onchain-new-key')!.map((s) => s.result.composeHash!)),
    );
    const notOnce = (counts: Map<string, number>) => [...counts].filter(([, n]) => n !== 1);
    const throughputBad = notOnce(throughputCounts);
    const sequentialBad = notOnce(sequentialCounts);
    const distinctHashes = new Set(concurrent.map((s) => s.result.composeHash)).size;

    // ---- output ------------------------------------------------------------------------
    const requiredConfirmations = samples.get('onchain-new-key')![0]?.status.requiredConfirmations;
    out();
    out(
      `durable-cvm-envs bench · block time ${opts.blockTime} s · ${requiredConfirmations ?? '?'} confirmations · ` +
        `CVM apply delay ${applyDelayMs} ms${opts.applyDelayMs === undefined ? ' (simulator default)' : ''} · ` +
        `runs ${opts.runs} per kind · concurrent ${opts.concurrent}`,
    );
    out();
    out(`1. Sequential latency, client wall time from start to result (ms; fresh CVM each; p95 = nearest rank)`);
    const wallStats = KINDS.map(({ kind, label }) => ({ kind, label, d: distribution(samples.get(kind)!.map((s) => s.wallMs)) }));
    for (const l of table(
      ['kind', 'n', 'min', 'median', 'p95', 'max'],
      wallStats.map(({ kind, label, d }) => [label, String(samples.get(kind)!.length), ms(d.min), ms(d.median), ms(d.p95), ms(d.max)]),
    ))
      out(`  ${l}`);
    out();
    out('   Median split of the workflow\'s own timings (ms)');
    const splits = KINDS.map(({ kind }) => medianSplit(samples.get(kind)!));
    const splitRows: [string, keyof Split][] = [
      ['API calls (excl. apply wait)', 'apiMs'],
      ['chain', 'chainMs'],
      ['CVM apply (simulated)', 'cvmApplyMs'],
      ['orchestration (total − API − chain)', 'orchestrationMs'],
      ['workflow total', 'workflowTotalMs'],
      ['client overhead (wall − workflow total)', 'clientOverheadMs'],
      ['apiMs as recorded (incl. apply wait)', 'apiInclApplyMs'],
      ['history: activities running', 'activityRunMs'],
      ['history: Temporal (workflow span − activities)', 'temporalOverheadMs'],
    ];
    for (const l of table(
      ['', ...KINDS.map((k) => k.label)],
      splitRows.map(([name, key]) => [name, ...splits.map((s) => ms(s[key]))]),
    ))
      out(`  ${l}`);
    out();
    out('   Median time per phase (ms)');
    const phases = KINDS.map(({ kind }) => medianPhases(samples.get(kind)!));
    const phaseNames: string[] = [];
    for (const p of phases) for (const name of Object.keys(p)) if (!phaseNames.includes(name)) phaseNames.push(name);
    for (const l of table(
      ['phase', ...KINDS.map((k) => k.label)],
      phaseNames.map((name) => [name, ...phases.map((p) => ms(p[name]))]),
    ))
      out(`  ${l}`);

    const perUpdate = distribution(concurrent.map((s) => s.wallMs));
    const txCounts = concurrent.map((s) => s.status.sentTransactions.length);
    const moreThanOne = txCounts.filter((n) => n > 1).length;
    const updatesPerMin = (opts.concurrent / batchWallMs) * 60_000;
    const byCount = new Map<number, number>();
    for (const n of txCounts) byCount.set(n, (byCount.get(n) ?? 0) + 1);
    // Tells a lost nonce race (signed again on a new nonce) from a fee bump (same nonce).
    const nonceCounts = concurrent.map((s) => new Set(s.status.sentTransactions.map((t) => t.nonce)).size);
    const newNonceResigns = nonceCounts.reduce((a, n) => a + Math.max(0, n - 1), 0);
    const sameNonceReplacements = txCounts.reduce((a, n, i) => a + n - nonceCounts[i]!, 0);
    const txHistogram = [...byCount].sort(([a], [b]) => a - b).map(([n, k]) => `${k}×${n} tx`).join(', ');
    const once = throughputBad.length === 0 && distinctHashes === concurrent.length;
    out();
    out(`2. Throughput: ${opts.concurrent} on-chain updates with new keys started at once, one signer key`);
    for (const l of table(
      ['', 'value'],
      [
        ['total wall time (ms)', ms(batchWallMs)],
        ['updates/min', updatesPerMin.toFixed(1)],
        ['per-update wall min / median / p95 / max (ms)', `${ms(perUpdate.min)} / ${ms(perUpdate.median)} / ${ms(perUpdate.p95)} / ${ms(perUpdate.max)}`],
        ['updates that sent more than one transaction', `${moreThanOne} of ${concurrent.length}`],
        ['transactions sent in all', String(txCounts.reduce((a, n) => a + n, 0))],
        ['updates by transactions sent', txHistogram],
        ['  signed again on a new nonce', String(newNonceResigns)],
        ['  fee replacements on the same nonce', String(sameNonceReplacements)],
        ['distinct compose hashes', `${distinctHashes} of ${concurrent.length}`],
        ['exactly one ComposeHashAdded per compose hash', once ? 'OK' : 'FAIL'],
        ['  (also the sequential new-key runs)', sequentialBad.length === 0 ? 'OK' : 'FAIL'],
      ],
    ))
      out(`  ${l}`);
    for (const [hash, n] of [...throughputBad, ...sequentialBad]) out(`  FAIL: ${hash} has ${n} ComposeHashAdded events`);

    const rssPeak = Math.max(sampler.peak, rssAfter);
    out();
    out('3. Memory of this process (worker, client and simulator all run in it)');
    for (const l of table(
      ['', 'RSS MB'],
      [
        ['at start (before stack and worker)', String(mb(rssAtStart))],
        ['before the updates (worker running)', String(mb(rssBefore))],
        [`peak during the updates (${sampler.samples} samples, every 200 ms)`, String(mb(rssPeak))],
        ['after the updates', String(mb(rssAfter))],
      ],
    ))
      out(`  ${l}`);

    const summary = {
      options: { runs: opts.runs, concurrent: opts.concurrent, blockTimeS: opts.blockTime, applyDelayMs, requiredConfirmations: requiredConfirmations ?? null },
      sequential: Object.fromEntries(
        KINDS.map(({ kind }, i) => [
          kind,
          {
            n: samples.get(kind)!.length,
            wallMs: Object.fromEntries(Object.entries(wallStats[i]!.d).map(([k, v]) => [k, Math.round(v)])),
            medianSplitMs: Object.fromEntries(Object.entries(splits[i]!).map(([k, v]) => [k, Math.round(v)])),
            medianPhasesMs: Object.fromEntries(Object.entries(phases[i]!).map(([k, v]) => [k, Math.round(v)])),
          },
        ]),
      ),
      throughput: {
        updates: opts.concurrent,
        totalWallMs: Math.round(batchWallMs),
        updatesPerMin: Math.round(updatesPerMin * 10) / 10,
        perUpdateWallMs: Object.fromEntries(Object.entries(perUpdate).map(([k, v]) => [k, Math.round(v)])),
        moreThanOneTx: moreThanOne,
        transactionsSent: txCounts.reduce((a, n) => a + n, 0),
        updatesByTransactionsSent: Object.fromEntries([...byCount].sort(([a], [b]) => a - b)),
        newNonceResigns,
        sameNonceReplacements,
        distinctComposeHashes: distinctHashes,
        oneComposeHashAddedPerHash: once,
        sequentialOneComposeHashAddedPerHash: sequentialBad.length === 0,
      },
      memoryMb: { atStart: mb(rssAtStart), before: mb(rssBefore), peak: mb(rssPeak), after: mb(rssAfter), samples: sampler.samples },
    };
    out();
    out(JSON.stringify(summary));

    if (!once || sequentialBad.length > 0) {
      progress('FAIL: a compose hash was not registered exactly once');
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
    sampler.stop();
    await session.close(failed && !interrupt.signal.aborted);
    interrupt.dispose();
  }
}

process.exit(await main());
