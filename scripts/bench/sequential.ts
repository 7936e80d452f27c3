// Sections 1 and 2 of the bench: sequential latency per update kind (with the workflow's own
// time split), and on-chain updates of distinct apps started at once with one signer key.
import { randomBytes } from 'node:crypto';
import { createPublicClient, http, parseEventLogs, type Hex } from 'viem';
import { dstackAppAbi } from '../../src/chain/dstack-app-abi.ts';
import { getEnvUpdateStatus, type EnvUpdateHandle } from '../../src/client.ts';
import type { UpdateEnvResult, UpdateStatus } from '../../src/workflows/definitions.ts';
import { distribution, median, ms, round, table, tsMs } from './stats.ts';
import { awaitResult, BenchFailure, secretValue, startUpdate, type Ctx, type Prepared } from './updates.ts';

export type Kind = 'onchain-new-key' | 'onchain-same-keys' | 'phala';

export const KINDS: { kind: Kind; label: string }[] = [
  { kind: 'onchain-new-key', label: 'on-chain KMS, new allowed key' },
  { kind: 'onchain-same-keys', label: 'on-chain KMS, value only' },
  { kind: 'phala', label: 'Phala KMS' },
];

export interface Sample {
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

/** A fresh CVM and an env for it; key names carry a per-CVM suffix so every compose hash is distinct. */
export async function prepare(ctx: Ctx, kind: Kind): Promise<Prepared> {
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

export function checkPath(kind: Kind, r: UpdateEnvResult): void {
  // A run that took another path than its kind says would measure the wrong thing.
  const twoPhase = r.transactionHash !== undefined;
  if (kind === 'onchain-new-key' && (!twoPhase || !r.allowedEnvsChanged)) {
    throw new BenchFailure(`CVM ${r.cvmId}: a new allowed key finished without a registration transaction`);
  }
  if (kind !== 'onchain-new-key' && twoPhase) throw new BenchFailure(`CVM ${r.cvmId}: a ${kind} update sent a registration transaction`);
  if (kind === 'phala' ? r.kms !== 'phala' : r.kms !== 'onchain')
    throw new BenchFailure(`CVM ${r.cvmId} reported ${r.kms} KMS for a ${kind} update`);
  if (!r.applied) throw new BenchFailure(`CVM ${r.cvmId}: the update finished without being applied`);
}

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

export async function runUpdate(ctx: Ctx, kind: Kind, prepared: Prepared, startAt?: number, withHistory = false): Promise<Sample> {
  const { cvm } = prepared;
  const t0 = startAt ?? performance.now();
  const handle = await startUpdate(ctx, prepared);
  const result = await awaitResult(ctx, handle, cvm.id);
  const wallMs = performance.now() - t0;
  checkPath(kind, result);
  const status = await getEnvUpdateStatus(ctx.client, cvm.id);
  return { kind, cvmId: cvm.id, wallMs, result, status, ...(withHistory ? { history: await historySpan(handle) } : {}) };
}

export const phaseMs = (s: Sample, phase: string) => s.result.timings.phases.filter((p) => p.phase === phase).reduce((a, p) => a + p.ms, 0);

export interface Split {
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

export function split(s: Sample): Split {
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

export function medianSplit(samples: Sample[]): Split {
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
export function medianPhases(samples: Sample[]): Record<string, number> {
  const order: string[] = [];
  for (const s of samples) for (const p of s.result.timings.phases) if (!order.includes(p.phase)) order.push(p.phase);
  return Object.fromEntries(order.map((phase) => [phase, median(samples.map((s) => phaseMs(s, phase)))]));
}

export async function composeHashAddedCounts(rpcUrl: string, appId: string, hashes: string[]): Promise<Map<string, number>> {
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

/** Section 1: tables of the sequential runs, and their part of the JSON line. */
export function sequentialSection(samples: Map<Kind, Sample[]>, out: (line?: string) => void) {
  out(`1. Sequential latency, client wall time from start to result (ms; fresh CVM each; p95 = nearest rank)`);
  const wallStats = KINDS.map(({ kind, label }) => ({ kind, label, d: distribution(samples.get(kind)!.map((s) => s.wallMs)) }));
  for (const l of table(
    ['kind', 'n', 'min', 'median', 'p95', 'max'],
    wallStats.map(({ kind, label, d }) => [label, String(samples.get(kind)!.length), ms(d.min), ms(d.median), ms(d.p95), ms(d.max)]),
  ))
    out(`  ${l}`);
  out();
  out("   Median split of the workflow's own timings (ms)");
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
  return Object.fromEntries(
    KINDS.map(({ kind }, i) => [
      kind,
      {
        n: samples.get(kind)!.length,
        wallMs: Object.fromEntries(Object.entries(wallStats[i]!.d).map(([k, v]) => [k, round(v)])),
        medianSplitMs: Object.fromEntries(Object.entries(splits[i]!).map(([k, v]) => [k, round(v)])),
        medianPhasesMs: Object.fromEntries(Object.entries(phases[i]!).map(([k, v]) => [k, round(v)])),
      },
    ]),
  );
}

export interface ThroughputRun {
  concurrent: Sample[];
  batchWallMs: number;
  /** Compose hashes (of this section and of the sequential new-key runs) not registered exactly once. */
  throughputBad: [string, number][];
  sequentialBad: [string, number][];
}

/** Section 2: the throughput table, and its part of the JSON line. */
export function throughputSection(run: ThroughputRun, out: (line?: string) => void) {
  const { concurrent, batchWallMs, throughputBad, sequentialBad } = run;
  const n = concurrent.length;
  const distinctHashes = new Set(concurrent.map((s) => s.result.composeHash)).size;
  const perUpdate = distribution(concurrent.map((s) => s.wallMs));
  const txCounts = concurrent.map((s) => s.status.sentTransactions.length);
  const moreThanOne = txCounts.filter((n) => n > 1).length;
  const updatesPerMin = (n / batchWallMs) * 60_000;
  const byCount = new Map<number, number>();
  for (const n of txCounts) byCount.set(n, (byCount.get(n) ?? 0) + 1);
  // Tells a lost nonce race (signed again on a new nonce) from a fee bump (same nonce).
  const nonceCounts = concurrent.map((s) => new Set(s.status.sentTransactions.map((t) => t.nonce)).size);
  const newNonceResigns = nonceCounts.reduce((a, n) => a + Math.max(0, n - 1), 0);
  const sameNonceReplacements = txCounts.reduce((a, n, i) => a + n - nonceCounts[i]!, 0);
  const txHistogram = [...byCount]
    .sort(([a], [b]) => a - b)
    .map(([n, k]) => `${k}×${n} tx`)
    .join(', ');
  const once = throughputBad.length === 0 && distinctHashes === concurrent.length;
  out();
  out(`2. Throughput: ${n} on-chain updates with new keys started at once, one signer key`);
  for (const l of table(
    ['', 'value'],
    [
      ['total wall time (ms)', ms(batchWallMs)],
      ['updates/min', updatesPerMin.toFixed(1)],
      [
        'per-update wall min / median / p95 / max (ms)',
        `${ms(perUpdate.min)} / ${ms(perUpdate.median)} / ${ms(perUpdate.p95)} / ${ms(perUpdate.max)}`,
      ],
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

  return {
    updates: n,
    totalWallMs: round(batchWallMs),
    updatesPerMin: round(updatesPerMin, 1),
    perUpdateWallMs: Object.fromEntries(Object.entries(perUpdate).map(([k, v]) => [k, round(v)])),
    moreThanOneTx: moreThanOne,
    transactionsSent: txCounts.reduce((a, n) => a + n, 0),
    updatesByTransactionsSent: Object.fromEntries([...byCount].sort(([a], [b]) => a - b)),
    newNonceResigns,
    sameNonceReplacements,
    distinctComposeHashes: distinctHashes,
    oneComposeHashAddedPerHash: once,
    sequentialOneComposeHashAddedPerHash: sequentialBad.length === 0,
  };
}
