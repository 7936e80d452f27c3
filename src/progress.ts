// Following one env update as it runs, shared by the operator CLI and the demo so both
// tell an operator the same thing in the same words.
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { buildRegistrationProposal, describeRegistrationProposal } from './chain/registration-proposal.ts';
import type { EnvUpdateHandle, RolloutHandle } from './client.ts';
import { FAILURE } from './failure-types.ts';
import { rolloutStatusQuery, type RolloutResult, type RolloutStatus } from './workflows/rollout/definitions.ts';
import { statusQuery, type UpdateEnvResult, type UpdateStatus, type UpdateTimings } from './workflows/definitions.ts';

export interface ProgressOptions {
  /** Receives one finished line at a time, without a newline. */
  write(line: string): void;
  /** Put in front of every line, so two updates in one log stay apart. */
  label?: string;
  /** How an operator invokes the CLI, for the hints printed when the workflow waits. */
  cli?: string;
  /** Status poll period. */
  intervalMs?: number;
}

export const DEFAULT_CLI = 'npm run cli --';

const PHASE_TEXT: Record<UpdateStatus['phase'], (s: UpdateStatus) => string> = {
  validating: () => 'checking the input',
  resolving: () => 'looking up the CVM',
  encrypting: (s) =>
    `${s.kms ? `${s.kms === 'onchain' ? 'on-chain' : 'Phala'} KMS` : 'KMS'}${s.appId ? `, app ${s.appId}` : ''}: fetching the env encryption key and encrypting`,
  phase1: () => 'sending the encrypted env (phase 1)',
  checking: (s) => `the API asks for compose hash ${s.composeHash ?? '?'} to be registered on chain ${s.chainId ?? '?'}; checking it`,
  registering: (s) => `registering the compose hash on app ${s.appId ?? '?'}`,
  confirming: (s) =>
    `transaction ${s.transactionHash ?? '?'}${s.blockNumber !== undefined ? ` in block ${s.blockNumber}` : ''}; waiting for ${s.requiredConfirmations ?? '?'} confirmation(s)`,
  phase2: (s) => `sending the env with the registration ${s.transactionHash ?? '?'} (phase 2)`,
  applying: (s) => `accepted (correlation id ${s.correlationId ?? '?'}); waiting until the CVM runs with it`,
  awaiting_operator: () => 'waiting for an operator',
  completed: () => 'done',
  failed: (s) => `failed${s.lastError ? `: ${s.lastError}` : ''}`,
  aborted: () => 'aborted',
};

/**
 * The commands that move a waiting workflow on. The reason text is the workflow's own, and
 * it names the signals that wait accepts; a wait that names none gets every option.
 */
export function operatorHints(cvmId: string, reason: string, cli = DEFAULT_CLI): string[] {
  const wantsTx = /useTransaction|use-tx/i.test(reason);
  const wantsRetry = /\bretry\b/i.test(reason);
  const all = !wantsTx && !wantsRetry;
  const out: string[] = [];
  if (wantsTx || all) out.push(`hand over a registration transaction:  ${cli} use-tx ${cvmId} 0x<transaction hash>`);
  if (wantsRetry || all) out.push(`run the waiting step again:           ${cli} retry ${cvmId}`);
  out.push(`give up on this change:               ${cli} abort ${cvmId} --reason "<why>"`);
  return out;
}

/**
 * While the app's owner must register the hash itself, exactly what to propose from its wallet
 * or Safe: chain, to, value, data. Empty when the wait is about something else.
 */
export function ownerProposalLines(s: Pick<UpdateStatus, 'waitingFor' | 'chainId' | 'appId' | 'composeHash'>): string[] {
  if (!s.waitingFor || !/\bowner\b/.test(s.waitingFor) || s.chainId === undefined || !s.appId || !s.composeHash) return [];
  try {
    const proposal = buildRegistrationProposal({ chainId: s.chainId, appId: s.appId, composeHash: s.composeHash });
    return ["the owner's transaction:", ...describeRegistrationProposal(proposal).map((l) => `  ${l}`)];
  } catch {
    return [];
  }
}

/**
 * Turns successive status snapshots into one line per thing an operator should notice:
 * a phase change, a sent transaction, a confirmation, a wait for an operator, a new error.
 */
export class ProgressPrinter {
  private last: UpdateStatus | undefined;
  private readonly started = performance.now();
  private readonly seenTx = new Set<string>();

  constructor(
    private readonly cvmId: string,
    private readonly options: ProgressOptions,
  ) {}

  line(text: string): void {
    const elapsed = ((performance.now() - this.started) / 1000).toFixed(1).padStart(5);
    const label = this.options.label ? `[${this.options.label}] ` : '';
    this.options.write(`${label}+${elapsed}s  ${text}`);
  }

  observe(s: UpdateStatus): void {
    const prev = this.last;
    this.last = s;
    // Several steps may pass between two polls (or a step may be left and entered again);
    // the timings list every step that ended, so none goes unmentioned.
    if (prev?.waitingFor && !s.waitingFor) this.line('operator action received; continuing');
    const phaseLines: string[] = [];
    // Several steps may pass between two polls (or a step may be left and entered again);
    // the timings list every step that ended, so none goes unmentioned.
    const ended = s.timings.phases.length - (prev?.timings.phases.length ?? 0);
    if (!prev || ended > 0 || prev.phase !== s.phase) {
      for (const p of s.timings.phases.slice(prev ? prev.timings.phases.length + 1 : 0)) {
        if (p.phase !== 'awaiting_operator') phaseLines.push(`${p.phase}: ${PHASE_TEXT[p.phase](s)} (done in ${seconds(p.ms)})`);
      }
      if (s.phase !== 'awaiting_operator') phaseLines.push(`${s.phase}: ${PHASE_TEXT[s.phase](s)}`);
    }
    const txLines: string[] = [];
    for (const tx of s.sentTransactions) {
      if (this.seenTx.has(tx.hash)) continue;
      this.seenTx.add(tx.hash);
      txLines.push(
        `sent transaction ${tx.hash} (nonce ${tx.nonce}, max fee ${gwei(tx.maxFeePerGas)}, tip ${gwei(tx.maxPriorityFeePerGas)})`,
      );
    }
    if (prev && s.transactionHash && prev.transactionHash !== s.transactionHash && s.phase === prev.phase) {
      txLines.push(`registration transaction is now ${s.transactionHash}${s.blockNumber !== undefined ? ` (block ${s.blockNumber})` : ''}`);
    }
    const confirmationLines: string[] = [];
    if (s.confirmations !== undefined && s.confirmations !== prev?.confirmations) {
      confirmationLines.push(
        `confirmations ${s.confirmations}/${s.requiredConfirmations ?? '?'}${s.blockNumber !== undefined ? ` (block ${s.blockNumber})` : ''}`,
      );
    }
    // What happened on chain goes before the step that followed it (the last confirmation
    // before phase 2), and after the step it belongs to when that step has just begun.
    const left = (phase: UpdateStatus['phase']) => prev !== undefined && prev.phase === phase && s.phase !== phase;
    const before = [...(left('registering') ? txLines : []), ...(left('confirming') ? confirmationLines : [])];
    const after = [...(left('registering') ? [] : txLines), ...(left('confirming') ? [] : confirmationLines)];
    for (const l of [...before, ...phaseLines, ...after]) this.line(l);
    if (s.lastError && s.lastError !== prev?.lastError && s.phase !== 'failed') this.line(`error: ${s.lastError}`);
    if (s.waitingFor && s.waitingFor !== prev?.waitingFor) {
      this.line(`WAITING FOR AN OPERATOR: ${s.waitingFor}`);
      for (const line of ownerProposalLines(s)) this.line(`  ${line}`);
      for (const hint of operatorHints(this.cvmId, s.waitingFor, this.options.cli)) this.line(`  ${hint}`);
    }
  }

  get status(): UpdateStatus | undefined {
    return this.last;
  }
}

function gwei(wei: string): string {
  try {
    const n = BigInt(wei);
    const whole = n / 1_000_000_000n;
    const frac = (n % 1_000_000_000n).toString().padStart(9, '0').slice(0, 3);
    return `${whole}.${frac} gwei`;
  } catch {
    return `${wei} wei`;
  }
}

export type FollowOutcome =
  | { ok: true; result: UpdateEnvResult; status?: UpdateStatus }
  | { ok: false; aborted: boolean; message: string; failureType?: string; status?: UpdateStatus };

/** The workflow's own reason, from the innermost failure that carries one. */
export function describeFailure(err: unknown): { message: string; failureType?: string; aborted: boolean } {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  const app = chain.find((e): e is ApplicationFailure => e instanceof ApplicationFailure);
  const failureType = app?.type ?? undefined;
  const meaningful = chain.filter((e) => !(e instanceof WorkflowFailedError) && e.message);
  const message = (meaningful[0] ?? chain[0])?.message ?? String(err);
  return { message: message.split('\n')[0]!.slice(0, 500), failureType, aborted: failureType === FAILURE.Aborted };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Queries the status with a deadline: without one, a query to a workflow no worker serves hangs. */
export async function queryStatus(handle: EnvUpdateHandle, timeoutMs = 5000): Promise<UpdateStatus> {
  return handle.client.connection.withDeadline(Date.now() + timeoutMs, () => handle.query(statusQuery));
}

/**
 * Prints the update's progress until it ends and returns how it ended. `signal` stops the
 * following only; the workflow keeps running.
 */
export async function followUpdate(
  handle: EnvUpdateHandle,
  cvmId: string,
  options: ProgressOptions & { signal?: AbortSignal },
): Promise<FollowOutcome | undefined> {
  const printer = new ProgressPrinter(cvmId, options);
  const interval = options.intervalMs ?? 500;
  let ended: FollowOutcome | undefined;
  const result = handle.result().then(
    (r): FollowOutcome => ({ ok: true, result: r }),
    (err): FollowOutcome => ({ ok: false, ...describeFailure(err) }),
  );
  void result.then((o) => (ended = o));
  const stopped = new Promise<void>((resolve) => {
    if (options.signal?.aborted) resolve();
    options.signal?.addEventListener('abort', () => resolve(), { once: true });
  });

  let queryFailures = 0;
  while (!ended && !options.signal?.aborted) {
    try {
      printer.observe(await queryStatus(handle));
      queryFailures = 0;
    } catch (err) {
      // A fresh workflow answers queries only after its first task; a busy worker may miss one
      // deadline. Report only a persistent failure, once.
      if (!ended && ++queryFailures === 10)
        printer.line(`status not available (${describeFailure(err).message}); still waiting for the result`);
    }
    await Promise.race([sleep(interval), result, stopped]);
  }
  if (!ended) return undefined;
  const outcome: FollowOutcome = ended;
  // The last poll may predate the end: show the closing steps too, if a worker still answers.
  try {
    printer.observe(await queryStatus(handle, 3000));
  } catch {
    if (outcome.ok) printer.line('completed');
    else printer.line(`${outcome.aborted ? 'aborted' : 'failed'}: ${outcome.message}`);
  }
  outcome.status = printer.status;
  return outcome;
}

function seconds(ms: number | undefined): string {
  if (ms === undefined) return '?';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatTimings(t: UpdateTimings): string[] {
  const phases = t.phases.filter((p) => p.ms > 0 || p.phase !== 'validating');
  return [
    `${t.totalMs !== undefined ? `total ${seconds(t.totalMs)}` : `running for ${seconds(Math.max(0, Date.now() - Date.parse(t.startedAt)) || undefined)}`} · API ${seconds(t.apiMs)} · chain ${seconds(t.chainMs)} · operator ${seconds(t.operatorMs)}`,
    `phases: ${phases.map((p) => `${p.phase} ${seconds(p.ms)}`).join(', ') || '(none)'}`,
  ];
}

export function formatResult(r: UpdateEnvResult): string[] {
  const lines = [
    `env of CVM ${r.cvmId} updated (${r.kms === 'onchain' ? 'on-chain' : 'Phala'} KMS)${r.applied ? ', running with it' : ', accepted'}`,
    `  correlation id       ${r.correlationId}`,
    `  allowed envs changed ${r.allowedEnvsChanged ? 'yes' : 'no'}`,
  ];
  if (r.composeHash) lines.push(`  compose hash         ${r.composeHash}`);
  if (r.transactionHash)
    lines.push(`  registration tx      ${r.transactionHash}${r.blockNumber !== undefined ? ` (block ${r.blockNumber})` : ''}`);
  for (const l of formatTimings(r.timings)) lines.push(`  ${l}`);
  return lines;
}

export function formatStatus(s: UpdateStatus, cli = DEFAULT_CLI): string[] {
  const lines = [`phase                ${s.phase}`];
  if (s.kms) lines.push(`kms                  ${s.kms}${s.chainId !== undefined ? ` (chain ${s.chainId})` : ''}`);
  if (s.appId) lines.push(`app                  ${s.appId}`);
  if (s.composeHash) lines.push(`compose hash         ${s.composeHash}`);
  if (s.transactionHash) {
    lines.push(`registration tx      ${s.transactionHash}${s.blockNumber !== undefined ? ` (block ${s.blockNumber})` : ''}`);
  }
  for (const tx of s.sentTransactions) lines.push(`  sent ${tx.hash} nonce ${tx.nonce}`);
  if (s.confirmations !== undefined) lines.push(`confirmations        ${s.confirmations}/${s.requiredConfirmations ?? '?'}`);
  if (s.correlationId) lines.push(`correlation id       ${s.correlationId}`);
  const attempts = Object.entries(s.attempts).filter(([, n]) => n > 1);
  if (attempts.length > 0) lines.push(`repeated steps       ${attempts.map(([k, n]) => `${k}×${n}`).join(', ')}`);
  if (s.lastError) lines.push(`last error           ${s.lastError}`);
  if (s.waitingFor) {
    lines.push(`WAITING FOR AN OPERATOR: ${s.waitingFor}`);
    for (const hint of operatorHints(s.cvmId, s.waitingFor, cli)) lines.push(`  ${hint}`);
  }
  for (const l of formatTimings(s.timings)) lines.push(l);
  return lines;
}

/**
 * Last line of defence for output: replaces any known secret that slipped into a message.
 * Short strings are left alone, since masking them would mangle ordinary text.
 */
export function createRedactor(secrets: Iterable<string | undefined>): (text: string) => string {
  const list = [...new Set([...secrets].filter((s): s is string => typeof s === 'string' && s.length >= 8))].sort(
    (a, b) => b.length - a.length,
  );
  if (list.length === 0) return (t) => t;
  return (text) => {
    let out = text;
    for (const s of list) if (out.includes(s)) out = out.split(s).join('[redacted]');
    return out;
  };
}

// ---------------------------------------------------------------------------
// Rollouts
// ---------------------------------------------------------------------------

/** One line: a bar of the CVMs that have ended, and the counts by phase. */
export function formatRolloutBar(s: RolloutStatus, width = 30): string {
  const ended = s.counts.succeeded + s.counts.failed + s.counts.aborted;
  const filled = s.total === 0 ? 0 : Math.round((ended / s.total) * width);
  const c = s.counts;
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${ended}/${s.total}  ` +
    `succeeded ${c.succeeded}  failed ${c.failed}  running ${c.running}  pending ${c.pending}` +
    `${c.aborted ? `  aborted ${c.aborted}` : ''}  (${s.state})`
  );
}

export function rolloutHints(rolloutId: string, s: RolloutStatus, cli = DEFAULT_CLI): string[] {
  const out: string[] = [];
  if (s.state === 'awaiting_approval') out.push(`roll out to the rest:   ${cli} rollout approve ${rolloutId}`);
  if (s.state === 'paused' || s.state === 'halted') out.push(`go on:                  ${cli} rollout resume ${rolloutId}`);
  if (s.state === 'halted') out.push(`retry the failed CVMs:  ${cli} rollout retry-failed ${rolloutId}`);
  out.push(`stop it:                ${cli} rollout abort ${rolloutId} --reason "<why>"`);
  return out;
}

export function formatRolloutStatus(s: RolloutStatus): string[] {
  const lines = [
    `rollout              ${s.rolloutId}`,
    `state                ${s.state}${s.waitingFor ? ` — ${s.waitingFor}` : ''}`,
    `progress             ${formatRolloutBar(s)}`,
    `concurrency          ${s.concurrency}${s.maxFailures !== undefined ? `, max failures ${s.maxFailures}` : ''}` +
      `${s.canary.count ? `, canary ${s.canary.count} (${s.canary.approved ? 'approved' : 'not approved'})` : ''}`,
    `started              ${s.startedAt}${s.finishedAt ? `, finished ${s.finishedAt}` : ''}${s.runs > 1 ? ` (${s.runs} runs)` : ''}`,
  ];
  if (s.abortReason) lines.push(`abort reason         ${s.abortReason}`);
  if (s.running.length) lines.push(`running              ${s.running.slice(0, 20).join(', ')}${s.running.length > 20 ? ', …' : ''}`);
  for (const f of s.failed) lines.push(`failed               ${f.cvmId}: ${f.reason}`);
  return lines;
}

/**
 * Polls a rollout until it ends, writing the bar whenever a count or the state changes and
 * the operator's options whenever it starts waiting. Undefined when `signal` stopped it.
 */
export async function followRollout(
  handle: RolloutHandle,
  rolloutId: string,
  options: { write(line: string): void; intervalMs?: number; signal?: AbortSignal; cli?: string },
): Promise<RolloutResult | undefined> {
  const result = handle.result();
  result.catch(() => {});
  let last = '';
  let lastState = '';
  let done = false;
  void result.finally(() => (done = true)).catch(() => {});
  while (!done && !options.signal?.aborted) {
    try {
      const s = await handle.query(rolloutStatusQuery);
      const bar = formatRolloutBar(s);
      if (bar !== last) options.write(bar);
      last = bar;
      if (s.state !== lastState && s.waitingFor) {
        options.write(`waiting: ${s.waitingFor}`);
        for (const h of rolloutHints(rolloutId, s, options.cli)) options.write(`  ${h}`);
      }
      lastState = s.state;
    } catch {
      // The query is answered by a worker; a moment without one is not the rollout's end.
    }
    await Promise.race([
      result.then(
        () => {},
        () => {},
      ),
      new Promise((r) => setTimeout(r, options.intervalMs ?? 1000)),
    ]);
  }
  if (options.signal?.aborted && !done) return undefined;
  // The end came between two polls: the closing counts are still worth a line.
  try {
    const bar = formatRolloutBar(await handle.query(rolloutStatusQuery));
    if (bar !== last) options.write(bar);
  } catch {
    // Only the bar is lost; the result below says it all.
  }
  return result;
}
