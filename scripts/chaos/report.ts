// The chaos run's figures: tables for a person, one JSON line for a program, and the targets missed.
import { ms, round, table } from '../bench/stats.ts';
import type { DropFault, ReorgFault } from './chain-faults.ts';
import type { Hit } from './leaks.ts';
import type { ChaosOptions } from './options.ts';
import type { WorkerPoolStats } from './workers.ts';

export interface ChaosReport {
  options: ChaosOptions;
  requiredConfirmations: number;
  updates: number;
  completed: number;
  failed: number;
  /** Not settled by the workflow itself: parked for an operator, timed out, or never started. */
  other: number;
  failures: Record<string, number>;
  others: Record<string, number>;
  /** Each update that did not complete, with why. */
  notCompleted: { workflowId: string; kind: string; reason: string }[];
  registrations: {
    /** One per app: its CVMs share one compose. */
    expected: number;
    mined: number;
    distinct: number;
    duplicates: { pair: string; registrations: number }[];
    /** Completed updates whose compose hash has no registration on the canonical chain. */
    unregistered: string[];
  };
  mismatches: { cvmId: string; keys: string[] }[];
  /** Place → secrets found there in plaintext. */
  plaintext: Record<string, Hit[]>;
  scanned: {
    secrets: number;
    workflows: number;
    logFiles: number;
    logBytes: number;
    cliCommands: number;
    cliFailures: string[];
    searchAttributes: string[];
  };
  maxHistoryLength: number;
  longestHistoryWorkflowId: string;
  faults: {
    workers: WorkerPoolStats;
    temporalRestart: { atMs: number | undefined; downMs: number };
    api: { rate: number };
    rpc: { rate: number; calls: number; faulted: number };
    drop: DropFault;
    reorg: ReorgFault;
  };
  /** From the common start until the last update settled. */
  wallMs: number;
  /** The whole run: stack, setup, updates and checks. */
  runMs: number;
}

/** The targets the run missed, each as a sentence. */
export function missedTargets(r: ChaosReport): string[] {
  const missed: string[] = [];
  const plaintext = Object.values(r.plaintext).reduce((a, h) => a + h.length, 0);
  if (r.completed !== r.updates) missed.push(`${r.completed}/${r.updates} completed`);
  if (r.registrations.duplicates.length > 0) missed.push(`${r.registrations.duplicates.length} compose hash(es) registered more than once`);
  if (r.registrations.unregistered.length > 0)
    missed.push(`${r.registrations.unregistered.length} completed update(s) with no registration`);
  if (r.mismatches.length > 0) missed.push(`${r.mismatches.length} CVM(s) run another env than asked`);
  if (plaintext > 0) missed.push(`${plaintext} secret(s) found in plaintext`);
  if (r.scanned.cliFailures.length > 0) missed.push(`${r.scanned.cliFailures.length} CLI command(s) failed`);
  const f = r.faults;
  if (f.workers.kills === 0) missed.push('no worker was killed');
  if (f.temporalRestart.atMs === undefined) missed.push('the Temporal server was not restarted while updates ran');
  if (!f.drop.hash) missed.push('no transaction was dropped');
  if (!f.reorg.registrationsRemoved) missed.push('the reorg removed no registration');
  if (f.rpc.rate > 0 && f.rpc.faulted === 0) missed.push('no RPC call was faulted');
  return missed;
}

const s = (ms_: number | undefined) => (ms_ === undefined ? '—' : `${(ms_ / 1000).toFixed(1)} s`);

/** Prints the tables and the JSON line; returns the targets missed. */
export function printReport(r: ChaosReport, out: (line?: string) => void): string[] {
  const missed = missedTargets(r);
  const o = r.options;
  const plaintext = Object.values(r.plaintext).reduce((a, h) => a + h.length, 0);
  out();
  out(
    `durable-cvm-envs chaos run · ${o.apps} apps × ${o.cvmsPerApp} CVMs, one signer key · block time ${o.blockTime} s · ` +
      `${r.requiredConfirmations} confirmations · seed ${o.seed}`,
  );
  out();
  out('Faults while the updates ran');
  for (const l of table(
    ['fault', 'what happened'],
    [
      [
        `${o.workers} workers, SIGKILL every ${o.killEveryS} s in turn${Number.isFinite(o.maxKills) ? `, ${o.maxKills} at most` : ''}`,
        `${r.faults.workers.kills} kills, ${r.faults.workers.starts} starts, ${r.faults.workers.crashes} exits on their own, ${r.faults.workers.skipped} turns skipped (still starting)`,
      ],
      [
        'Temporal server restart (same database)',
        r.faults.temporalRestart.atMs === undefined
          ? 'not done: the updates ended first'
          : `at ${s(r.faults.temporalRestart.atMs)}, down ${s(r.faults.temporalRestart.downMs)}`,
      ],
      ['API 5xx and 429', `${Math.round(o.apiFaultRate * 100)}% of the answers`],
      ['RPC errors (workers)', `${r.faults.rpc.faulted} of ${r.faults.rpc.calls} calls (${Math.round(o.rpcFaultRate * 100)}% asked)`],
      ['dropped transaction', r.faults.drop.hash ? `${r.faults.drop.hash} at ${s(r.faults.drop.atMs)}` : 'none caught in the pool'],
      [
        `reorg of depth ${r.faults.reorg.depth}`,
        r.faults.reorg.registrationsRemoved
          ? `${r.faults.reorg.registrationsRemoved} registration(s) removed at ${s(r.faults.reorg.atMs)}`
          : 'no registration removed',
      ],
    ],
  ))
    out(`  ${l}`);
  out();
  out('Outcome');
  const target = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  for (const l of table(
    ['', 'figure', 'target'],
    [
      ['completed / failed / other', `${r.completed} / ${r.failed} / ${r.other}`, target(r.completed === r.updates)],
      ['registrations mined (distinct, needed)', `${r.registrations.mined} (${r.registrations.distinct}, ${r.registrations.expected})`, ''],
      ['duplicate registrations', String(r.registrations.duplicates.length), target(r.registrations.duplicates.length === 0)],
      ['completed without a registration', String(r.registrations.unregistered.length), target(r.registrations.unregistered.length === 0)],
      ['env mismatches (simulator vs asked)', String(r.mismatches.length), target(r.mismatches.length === 0)],
      ...Object.entries(r.plaintext).map(([where, hits]) => [
        `plaintext secrets in ${where}`,
        String(hits.length),
        target(hits.length === 0),
      ]),
      ['max history length (events)', String(r.maxHistoryLength), ''],
      ['wall time of the updates', `${ms(r.wallMs)} ms`, ''],
      ['whole run', `${ms(r.runMs)} ms`, ''],
    ],
  ))
    out(`  ${l}`);
  out(
    `  scanned: ${r.scanned.secrets} secrets in ${r.scanned.workflows} workflow histories and their visibility records ` +
      `(search attributes ${r.scanned.searchAttributes.join(', ') || 'none'}), ${r.scanned.logFiles} log files ` +
      `(${Math.round(r.scanned.logBytes / 1024)} KiB), ${r.scanned.cliCommands} CLI commands`,
  );
  for (const [reason, n] of Object.entries(r.failures)) out(`  failed ×${n}: ${reason}`);
  for (const [reason, n] of Object.entries(r.others)) out(`  other ×${n}: ${reason}`);
  for (const n of r.notCompleted.slice(0, 10)) out(`  ${n.kind}: ${n.workflowId}: ${n.reason.split('\n')[0]!.slice(0, 300)}`);
  if (r.notCompleted.length > 10) out(`  … and ${r.notCompleted.length - 10} more not completed (all in the JSON line)`);
  for (const d of r.registrations.duplicates) out(`  duplicate: ${d.pair} registered ${d.registrations} times`);
  for (const m of r.mismatches) out(`  mismatch: ${m.cvmId} keys ${m.keys.join(', ')}`);
  for (const [where, hits] of Object.entries(r.plaintext)) for (const h of hits) out(`  plaintext in ${where}: ${h.label} at ${h.where}`);
  for (const f of r.scanned.cliFailures) out(`  cli: ${f}`);
  out();
  out(
    JSON.stringify({
      ...r,
      plaintextTotal: plaintext,
      wallMs: round(r.wallMs),
      runMs: round(r.runMs),
      targetsMissed: missed,
    }),
  );
  return missed;
}
