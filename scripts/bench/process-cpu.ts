// CPU time of the bench's own process tree, per process, from Linux's /proc: how many core
// seconds a scenario cost the Temporal server, the worker, the chain and the bench itself (which
// runs the simulator in-process). On a machine with few cores these add up to the wall time's
// ceiling, so they say whether a scenario waits on work or on a process.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime: USER_HZ, 100 on Linux. */
const TICKS_PER_SECOND = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  name: string;
  cpuMs: number;
  /** CPU of its children that have exited and been waited for (cutime + cstime). */
  reapedMs: number;
}

function readStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone since the directory listing
  }
  // The name is in parentheses and may hold spaces: the fields after it are counted from ')'.
  const close = raw.lastIndexOf(')');
  const name = raw.slice(raw.indexOf('(') + 1, close);
  const fields = raw.slice(close + 2).split(' ');
  // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  const ms = (a: number, b: number) => ((Number(fields[a]) + Number(fields[b])) * 1000) / TICKS_PER_SECOND;
  return { pid, ppid: Number(fields[1]), name, cpuMs: ms(11, 12), reapedMs: ms(13, 14) };
}

/** CPU milliseconds so far of this process and every descendant, by pid. */
export function processTreeCpu(root = process.pid): Map<number, ProcStat> {
  const all: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) all.push(stat);
  }
  const tree = new Map<number, ProcStat>();
  const visit = (pid: number) => {
    for (const s of all) {
      if (s.ppid !== pid || tree.has(s.pid)) continue;
      tree.set(s.pid, s);
      visit(s.pid);
    }
  };
  const self = all.find((s) => s.pid === root);
  if (self) tree.set(root, self);
  visit(root);
  return tree;
}

/** Names a process's own CPU time, or (`reaped`) that of its exited children, in a snapshot's tree. */
export type ProcessLabel = (p: ProcStat, tree: Map<number, ProcStat>, reaped: boolean) => string;

/**
 * Core seconds each process spent between two snapshots, under the names `label` gives them
 * (processes with the same label add up); processes that used none are left out. A child that
 * ran and exited in between is gone from /proc: its time is its parent's `reaped` time.
 */
export function cpuSecondsBetween(
  before: Map<number, ProcStat>,
  after: Map<number, ProcStat>,
  label: ProcessLabel,
): Record<string, number> {
  const spentMs: Record<string, number> = {};
  const add = (key: string, ms: number) => {
    if (ms > 0) spentMs[key] = (spentMs[key] ?? 0) + ms;
  };
  for (const [pid, end] of after) {
    const start = before.get(pid);
    add(label(end, after, false), end.cpuMs - (start?.cpuMs ?? 0));
    add(label(end, after, true), end.reapedMs - (start?.reapedMs ?? 0));
  }
  // Rounded once, to a tenth of a second, after the sums.
  return Object.fromEntries(Object.entries(spentMs).map(([key, ms]) => [key, Math.round(ms / 100) / 10]));
}

/**
 * Names the bench's processes by their part: the worker (and anything it started), the
 * Temporal server, the chain, the bench itself (client, simulator, block watcher) and, while
 * it runs, the baseline's process.
 */
export function processRole(workerPid: number): ProcessLabel {
  return (p, tree, reaped) => {
    for (let at: ProcStat | undefined = p; at; at = tree.get(at.ppid)) if (at.pid === workerPid) return 'worker';
    // The bench's children that came and went: the baseline's process (its SDK and viem).
    if (p.pid === process.pid) return reaped ? 'baseline' : 'bench and simulator';
    if (reaped) return `${p.name} (exited children)`;
    if (p.name.startsWith('temporal')) return 'Temporal server';
    if (p.name.startsWith('anvil')) return 'anvil';
    return p.name === 'node' ? 'baseline' : p.name;
  };
}

/** Rows of core seconds by part for the service and the baseline, then totals and per update. */
export function cpuTable(
  ours: Record<string, number>,
  baseline: Record<string, number> | undefined,
  fleet: { updates: number },
  baselineFleet: { updates: number } | undefined,
): string[][] {
  const roles = [...new Set([...Object.keys(ours), ...Object.keys(baseline ?? {})])].sort();
  const cell = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(1));
  const total = (r: Record<string, number> | undefined) => (r ? Object.values(r).reduce((a, b) => a + b, 0) : undefined);
  const perUpdate = (r: Record<string, number> | undefined, n: number | undefined) =>
    r && n ? `${Math.round(((total(r) ?? 0) * 1000) / n)} ms` : '—';
  return [
    ...roles.map((role) => [role, cell(ours[role]), baseline ? cell(baseline[role] ?? 0) : '—']),
    ['total', cell(total(ours)), cell(total(baseline))],
    ['per update', perUpdate(ours, fleet.updates), perUpdate(baseline, baselineFleet?.updates)],
  ];
}
