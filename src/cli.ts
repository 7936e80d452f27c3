#!/usr/bin/env node
// The operator command line: start an env update and watch it, read a status, and steer a
// workflow that waits for an operator. `npm run cli -- help` prints the usage.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import {
  abortEnvUpdate,
  envUpdateHandle,
  retryEnvUpdate,
  startEnvUpdate,
  UpdateAlreadyRunningError,
  RequestAlreadyUsedError,
  useRegistrationTransaction,
  getSignerStatus,
  listSigners,
  startRollout,
  rolloutHandle,
  pauseRollout,
  resumeRollout,
  abortRollout,
  approveRollout,
  retryFailedRollout,
  RolloutAlreadyExistsError,
  RolloutActionRefusedError,
  OperatorActionRefusedError,
  type OperatorActionResult,
  type UpdateEnvInput,
} from './client.ts';
import { rolloutStatusQuery, type RolloutInput, type RolloutResult, type RolloutStatus } from './workflows/rollout/definitions.ts';
import { createDataConverter, PayloadKeyConfigError } from './codec.ts';
import { ConfigError, loadTemporalConfig, type TemporalConfig } from './config.ts';
import { parseEnvVars, type EnvVar } from './phala/dotenv.ts';
import {
  checkUpdateEnvInput,
  confirmationsProblem,
  cvmIdProblem,
  describeInputProblems,
  MAX_CONFIRMATIONS,
  MAX_REQUEST_ID_LENGTH,
  MIN_CONFIRMATIONS,
  requestIdProblem,
} from './workflows/input-schema.ts';
import { ENV_KEY_PATTERN, EnvValidationError, validateEnvVars } from './phala/env-validation.ts';
import { payloadBudgetProblem } from './workflows/payload-budget.ts';
import {
  createRedactor,
  DEFAULT_CLI,
  describeFailure,
  followRollout,
  followUpdate,
  formatResult,
  formatRolloutStatus,
  rolloutHints,
  formatStatus,
  queryStatus,
} from './progress.ts';
import type { ComposeHashPolicy, UpdateStatus } from './workflows/definitions.ts';
import { formatSignerStatus } from './signer-status-format.ts';
import { isMainModule } from './entry.ts';
import { withFileSecrets } from './file-secrets.ts';

export const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  update --cvm <id> (--env-file <path> | --env-file - | -e KEY=VALUE ...) [options]
        Start an env update of one CVM and follow it until it ends.
        --env-file <path>|-     dotenv file with the new env (all of it: it replaces the current env);
                                '-' reads it from stdin
        -e, --env KEY=VALUE     one variable; repeat for more (the value may contain '='). Values on
                                the command line are visible to other users and kept in shell
                                history: prefer --env-file
        --keys K1,K2            keys the CVM may read (allowed_envs); default: the env's own keys
        --confirmations N       blocks on top of the registration before phase 2 (1-${MAX_CONFIRMATIONS})
        --policy strict|warn|off  how a compose hash that differs from ours is treated (default strict)
        --request-id ID         idempotency key: the same ID attaches to the update it started
                                (letters, digits, '.', '_', ':', '-'; at most ${MAX_REQUEST_ID_LENGTH})
        --no-wait               print the workflow id and return once started
  status <cvm-id|workflow-id>   Show the phase, transactions, errors and what it waits for.
  retry <cvm-id|workflow-id>    Run the step a waiting update is stuck on again.
  abort <cvm-id|workflow-id> [--reason text]
                                Stop an update in any phase; nothing further is sent.
  use-tx <cvm-id|workflow-id> <0xhash>
                                Hand over a registration transaction someone else sent
                                (e.g. the app's multisig owner); it is checked on chain first,
                                and a newer hash replaces an older one.
                                retry, abort and use-tx print the workflow's answer; a refusal
                                prints its reason and exits 1.
  signer status [--chain N] [--address 0x…]
                                Show the transaction manager of each signer key: pending nonces,
                                their transactions and fees, the oldest age, counters, last error.
  rollout start (--app <id> | --cvms a,b,c) (--env-file <path> | --env-file -) [options]
        Change the env of many CVMs as one rollout (one update per CVM) and show its progress.
        --app <id>              every CVM of the app (listed through the API)
        --cvms a,b,c            these CVMs
        --env-file <path>|-     dotenv file with the new env ('-': read it from stdin)
        --keys K1,K2            keys the CVMs may read (allowed_envs); default: the env's own keys
        --concurrency N         updates at once (default 10)
        --canary N              run the first N CVMs first; the rest wait for 'rollout approve'
        --auto-approve          with --canary: go on by itself when every canary succeeded
        --max-failures N        after N failures start nothing more until an operator acts
        --confirmations N, --policy strict|warn|off   as for update
        --rollout-id ID, --request-id ID   idempotency: a rollout id is never run twice
        --no-wait               print the rollout id and return once started
  rollout status|pause|resume|approve|retry-failed <rollout-id>
  rollout abort <rollout-id> [--reason text]
                                Status; pause or resume starting children; approve after the
                                canary; retry the failed CVMs; abort (running updates are aborted,
                                returns once they have ended).
  help                          This text.

Options for every command:
  --json              stdout gets exactly one JSON object (the result, the failure or the status);
                      progress and errors go to stderr; after a usage, configuration or
                      connection error stdout stays empty
  --env-from <path>   read settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE,
                      PAYLOAD_ENCRYPTION_KEYS, TEMPORAL_UI_URL, ...) from a dotenv file; its values
                      win over the environment. Default: .data/stack.env when it exists, filling in
                      only what the environment does not set.

Progress goes to stderr; env values are never printed, only keys.
Exit codes: 0 success; 1 the update failed, was aborted or refused (for a rollout: any CVM
failed or was aborted, or the action was refused), or the workflow was not found; 2 bad usage or configuration; 3 Temporal unreachable or another unexpected error;
130 interrupted while following (the update itself goes on).`;

export const EXIT = { ok: 0, failed: 1, usage: 2, error: 3 } as const;

/** A problem with the command line or the settings: exit 2. Messages never hold values. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface Io {
  /** The whole of stdin (for `--env-file -`); default: the process's. */
  stdin?: () => Promise<string>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal?: AbortSignal;
}

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

const GLOBAL_OPTIONS: OptionSpec = {
  json: { type: 'boolean' },
  'env-from': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COMMAND_OPTIONS: Record<string, OptionSpec> = {
  update: {
    cvm: { type: 'string' },
    'env-file': { type: 'string' },
    env: { type: 'string', short: 'e', multiple: true },
    keys: { type: 'string' },
    confirmations: { type: 'string' },
    policy: { type: 'string' },
    'request-id': { type: 'string' },
    'no-wait': { type: 'boolean' },
  },
  status: {},
  retry: {},
  abort: { reason: { type: 'string' } },
  'use-tx': {},
  signer: { chain: { type: 'string' }, address: { type: 'string' } },
  rollout: {
    app: { type: 'string' },
    cvms: { type: 'string' },
    'env-file': { type: 'string' },
    keys: { type: 'string' },
    concurrency: { type: 'string' },
    canary: { type: 'string' },
    'auto-approve': { type: 'boolean' },
    'max-failures': { type: 'string' },
    confirmations: { type: 'string' },
    policy: { type: 'string' },
    'rollout-id': { type: 'string' },
    'request-id': { type: 'string' },
    'no-wait': { type: 'boolean' },
    reason: { type: 'string' },
  },
  help: {},
};

const ROLLOUT_SUBCOMMANDS = ['start', 'status', 'pause', 'resume', 'approve', 'retry-failed', 'abort'];

const POSITIONALS: Record<string, string[]> = {
  update: [],
  status: ['<cvm-id|workflow-id>'],
  retry: ['<cvm-id|workflow-id>'],
  abort: ['<cvm-id|workflow-id>'],
  'use-tx': ['<cvm-id|workflow-id>', '<0xhash>'],
  signer: ['status'],
  rollout: ['<subcommand>', '<rollout-id>'],
  help: [],
};

type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * parseArgs in non-strict mode with our own checks on its tokens: its strict-mode messages
 * quote whatever was typed, and a mistyped flag may well be followed by a secret.
 */
function parseCommandLine(command: string, args: string[]): { values: Values; positionals: string[] } {
  const options = { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS[command] };
  const { values, positionals, tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = options[t.name];
    if (!spec) throw new UsageError(`${command}: unknown option ${t.rawName.split('=')[0]!.slice(0, 40)}`);
    // `--env-file -` is stdin.
    const stdinDash = t.name === 'env-file' && t.value === '-';
    if (spec.type === 'string' && !stdinDash && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) {
      throw new UsageError(
        `${command}: ${t.rawName} needs a value${t.value === undefined ? '' : ` (to pass one starting with '-', write ${t.rawName}=<value>)`}`,
      );
    }
    if (spec.type === 'boolean' && t.inlineValue) throw new UsageError(`${command}: ${t.rawName} takes no value`);
  }
  const expected = command === 'rollout' && positionals[0] === 'start' ? ['start'] : POSITIONALS[command]!;
  if (positionals.length !== expected.length) {
    // Not echoed: a stray argument is often a KEY=VALUE that lost its -e.
    const what = expected.length === 0 ? 'no arguments' : `${expected.join(' ')}`;
    throw new UsageError(
      `${command}: expects ${what}, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}` +
        (command === 'update' && positionals.length > 0 ? ' (variables are passed as -e KEY=VALUE)' : ''),
    );
  }
  return { values: values as Values, positionals };
}

/** Settings from a dotenv file: an explicit file wins; the default one only fills gaps. */
function loadSettings(io: Io, envFrom: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...io.env };
  const explicit = envFrom !== undefined;
  const path = envFrom ?? join(io.cwd, '.data', 'stack.env');
  if (!explicit && !existsSync(path)) return env;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--env-from: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  for (const { key, value } of parseEnvVars(text)) {
    if (explicit || env[key] === undefined || env[key] === '') env[key] = value;
  }
  return env;
}

/** The text of an env file; '-' is stdin. */
async function readEnvText(command: string, file: string, io: Io): Promise<string> {
  if (file === '-') return (io.stdin ?? readStdin)();
  try {
    return readFileSync(resolve(io.cwd, file), 'utf8');
  } catch (err) {
    throw new UsageError(`${command}: --env-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Values in argv are readable by every user of the machine (ps, /proc) and land in shell history. */
export const ARGV_SECRETS_WARNING =
  'warning: -e KEY=VALUE puts values on the command line, where other users of this machine (ps) and your ' +
  'shell history can read them; use --env-file <path>, or --env-file - to read them from stdin';

async function collectEnv(values: Values, io: Io): Promise<{ env: EnvVar[]; source: string }> {
  const file = values['env-file'] as string | undefined;
  const pairs = (values.env as string[] | undefined) ?? [];
  if (file !== undefined && pairs.length > 0) throw new UsageError('update: give either --env-file or -e KEY=VALUE, not both');
  if (file === undefined && pairs.length === 0)
    throw new UsageError('update: the new env is missing: give --env-file <path>, --env-file - (stdin) or -e KEY=VALUE');
  let env: EnvVar[];
  let source: string;
  if (file !== undefined) {
    source = file === '-' ? '--env-file - (stdin)' : `--env-file ${file}`;
    env = parseEnvVars(await readEnvText('update', file, io));
    if (env.length === 0) throw new UsageError(`update: ${source} holds no variables`);
  } else {
    source = '-e';
    env = pairs.map((pair, i) => {
      const eq = pair.indexOf('=');
      if (eq < 0) throw new UsageError(`update: -e #${i + 1}: expected KEY=VALUE but there is no '='`);
      if (eq === 0) throw new UsageError(`update: -e #${i + 1}: expected KEY=VALUE but the key is empty`);
      return { key: pair.slice(0, eq), value: pair.slice(eq + 1) };
    });
  }
  try {
    validateEnvVars(env);
  } catch (err) {
    if (!(err instanceof EnvValidationError)) throw err;
    // The validator numbers items envs[i]; for -e the operator counts flags from 1.
    const message = source === '-e' ? err.message.replace(/envs\[(\d+)\]/g, (_, n: string) => `-e #${Number(n) + 1}`) : err.message;
    throw new UsageError(`update: ${source}: ${message}`);
  }
  return { env, source };
}

/** A rollout's env: a dotenv file, or stdin for '-'. */
async function readRolloutEnv(values: Values, io: Io): Promise<EnvVar[]> {
  const file = values['env-file'] as string | undefined;
  if (file === undefined) throw new UsageError('rollout start: the new env is missing: give --env-file <path> or --env-file - (stdin)');
  const env = parseEnvVars(await readEnvText('rollout start', file, io));
  const where = file === '-' ? 'stdin' : file;
  if (env.length === 0) throw new UsageError(`rollout start: --env-file ${where} holds no variables`);
  try {
    validateEnvVars(env);
  } catch (err) {
    if (!(err instanceof EnvValidationError)) throw err;
    throw new UsageError(`rollout start: --env-file ${where}: ${err.message}`);
  }
  const tooLarge = payloadBudgetProblem({ cvmId: '', env });
  if (tooLarge) throw new UsageError(`rollout start: --env-file ${where}: ${tooLarge}`);
  return env;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function positiveOption(values: Values, name: string, min = 1): number | undefined {
  const raw = values[name] as string | undefined;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`rollout start: --${name} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer`);
  }
  return n;
}

/** Everything of `rollout start` that can be checked offline. */
function rolloutInputOf(values: Values, env: EnvVar[]): RolloutInput {
  const app = values.app as string | undefined;
  const cvms = values.cvms as string | undefined;
  if ((app === undefined) === (cvms === undefined)) throw new UsageError('rollout start: give either --app <id> or --cvms a,b,c');
  let targets: RolloutInput['targets'];
  if (app !== undefined) {
    if (!/^(0x)?[0-9a-fA-F]{40}$/.test(app))
      throw new UsageError('rollout start: --app must be an app id (40 hex characters, optionally 0x-prefixed)');
    targets = { appId: app };
  } else {
    const ids = cvms!
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    if (ids.length === 0) throw new UsageError('rollout start: --cvms must list at least one CVM id');
    ids.forEach((id, i) => {
      if (cvmIdProblem(id)) throw new UsageError(`rollout start: --cvms: entry #${i + 1} is not a CVM id (letters, digits, '_' or '-')`);
    });
    if (new Set(ids).size !== ids.length) throw new UsageError('rollout start: --cvms lists a CVM twice');
    targets = { cvmIds: ids };
  }
  const canary = positiveOption(values, 'canary', 0);
  if (values['auto-approve'] && canary === undefined) throw new UsageError('rollout start: --auto-approve needs --canary N');
  for (const f of ['rollout-id', 'request-id']) {
    const v = values[f] as string | undefined;
    if (v !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/.test(v)) {
      throw new UsageError(`rollout start: --${f} must be 1-200 characters: letters, digits, '.', '_', ':' or '-'`);
    }
  }
  const keys = values.keys === undefined ? undefined : parseKeys(values.keys as string, env);
  const input: RolloutInput = {
    targets,
    env,
    ...(keys ? { allowedKeys: keys } : {}),
    ...(positiveOption(values, 'concurrency') !== undefined ? { concurrency: positiveOption(values, 'concurrency')! } : {}),
    ...(canary !== undefined ? { canary: { count: canary, autoApprove: values['auto-approve'] === true } } : {}),
    ...(positiveOption(values, 'max-failures') !== undefined ? { maxFailures: positiveOption(values, 'max-failures')! } : {}),
    ...(values.confirmations !== undefined ? { confirmations: parseConfirmations(values.confirmations as string) } : {}),
    ...(values.policy !== undefined ? { composeHashPolicy: parsePolicy(values.policy as string) } : {}),
    ...(values['rollout-id'] !== undefined ? { rolloutId: values['rollout-id'] as string } : {}),
    ...(values['request-id'] !== undefined ? { requestId: values['request-id'] as string } : {}),
  };
  return input;
}

function formatRolloutResult(r: RolloutResult): string[] {
  const lines = [
    `rollout              ${r.rolloutId}`,
    `CVMs                 ${r.total}: ${r.succeeded} succeeded, ${r.failed.length} failed, ${r.aborted.length} aborted`,
    `time                 ${(r.timings.totalMs / 1000).toFixed(1)} s (${r.timings.startedAt} → ${r.timings.finishedAt})`,
  ];
  if (r.abortReason) lines.push(`abort reason         ${r.abortReason}`);
  for (const f of r.failed) lines.push(`failed               ${f.cvmId}: ${f.reason}`);
  return lines;
}

async function runRolloutStart(ctx: Context, input: RolloutInput, noWait: boolean): Promise<number> {
  let started;
  try {
    started = await startRollout(ctx.client, input, { taskQueue: ctx.cfg.taskQueue });
  } catch (err) {
    if (err instanceof RolloutAlreadyExistsError) {
      ctx.err(`error: ${err.message}`);
      if (ctx.json) ctx.out(JSON.stringify({ error: 'already_exists', message: err.message, workflowId: err.workflowId }));
      return EXIT.failed;
    }
    throw err;
  }
  const { handle, rolloutId, workflowId, attached } = started;
  const keys = input.env instanceof Array ? input.env.map((e) => e.key).join(', ') : Object.keys(input.env).join(', ');
  ctx.err(
    attached
      ? `attached to rollout ${rolloutId} started earlier (workflow ${workflowId}); it runs with the env it started with`
      : `started rollout ${rolloutId} (env keys: ${keys}) to ${'appId' in input.targets ? `every CVM of app ${input.targets.appId}` : `${input.targets.cvmIds.length} CVM(s)`} as workflow ${workflowId}`,
  );
  const link = uiLink(ctx.env, ctx.cfg, workflowId);
  if (link) ctx.err(`Temporal UI: ${link} (its updates: RolloutId = "${rolloutId}")`);
  if (noWait) {
    if (ctx.json) ctx.out(JSON.stringify({ rolloutId, workflowId, attached }));
    else {
      ctx.out(rolloutId);
      ctx.err(`follow it with: ${DEFAULT_CLI} rollout status ${rolloutId}`);
    }
    return EXIT.ok;
  }
  let result: RolloutResult | undefined;
  try {
    result = await followRollout(handle, rolloutId, { write: ctx.err, signal: ctx.io.signal });
  } catch (err) {
    const { message } = describeFailure(err);
    ctx.err(`rollout failed: ${message}`);
    if (ctx.json) ctx.out(JSON.stringify({ rolloutId, workflowId, outcome: 'failed', error: message }));
    return EXIT.failed;
  }
  if (!result) {
    ctx.err(`stopped following; the rollout goes on. Check it with: ${DEFAULT_CLI} rollout status ${rolloutId}`);
    if (ctx.json) ctx.out(JSON.stringify({ rolloutId, workflowId, following: false }));
    return 130;
  }
  if (ctx.json) ctx.out(JSON.stringify(result));
  else for (const line of formatRolloutResult(result)) ctx.out(line);
  return result.failed.length === 0 && result.aborted.length === 0 ? EXIT.ok : EXIT.failed;
}

async function runRolloutCommand(ctx: Context, sub: string, id: string, values: Values): Promise<number> {
  if (sub === 'status') {
    const handle = rolloutHandle(ctx.client, id);
    const d = await handle.describe();
    const s: RolloutStatus = await handle.query(rolloutStatusQuery);
    if (ctx.json) ctx.out(JSON.stringify({ workflowId: d.workflowId, runId: d.runId, execution: d.status.name, status: s }));
    else {
      for (const line of formatRolloutStatus(s)) ctx.out(line);
      if (s.waitingFor) for (const h of rolloutHints(s.rolloutId, s)) ctx.err(h);
    }
    return EXIT.ok;
  }
  let s: RolloutStatus;
  try {
    if (sub === 'pause') s = await pauseRollout(ctx.client, id);
    else if (sub === 'resume') s = await resumeRollout(ctx.client, id);
    else if (sub === 'approve') s = await approveRollout(ctx.client, id);
    else if (sub === 'retry-failed') s = await retryFailedRollout(ctx.client, id);
    else {
      ctx.err(`aborting rollout ${id}: no new update starts, running ones are aborted; waiting for them to end…`);
      s = await abortRollout(ctx.client, id, values.reason as string | undefined);
    }
  } catch (err) {
    if (err instanceof RolloutActionRefusedError) {
      ctx.err(`error: ${err.message}`);
      if (ctx.json) ctx.out(JSON.stringify({ rolloutId: id, done: false, action: sub, error: err.message }));
      return EXIT.failed;
    }
    throw err;
  }
  if (ctx.json) ctx.out(JSON.stringify({ rolloutId: id, done: true, action: sub, status: s }));
  else for (const line of formatRolloutStatus(s)) ctx.out(line);
  return EXIT.ok;
}

function parseKeys(raw: string | undefined, env: EnvVar[]): string[] | undefined {
  if (raw === undefined) return undefined;
  const keys = raw.split(',').map((k) => k.trim());
  keys.forEach((k, i) => {
    if (!ENV_KEY_PATTERN.test(k))
      throw new UsageError(`update: --keys: entry #${i + 1} is not a valid env name (letters, digits, '_', not starting with a digit)`);
  });
  // The guest silently drops variables outside allowed_envs: refuse rather than lose them.
  const missing = env.map((e) => e.key).filter((k) => !keys.includes(k));
  if (missing.length > 0) throw new UsageError(`update: --keys must include every key of the env; missing: ${missing.join(', ')}`);
  return [...new Set(keys)];
}

function parsePolicy(raw: string | undefined): ComposeHashPolicy | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'strict' || raw === 'warn' || raw === 'off') return raw;
  throw new UsageError(`update: --policy must be strict, warn or off`);
}

function parseConfirmations(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || confirmationsProblem(n) !== undefined) {
    throw new UsageError(`update: --confirmations must be an integer from ${MIN_CONFIRMATIONS} to ${MAX_CONFIRMATIONS}`);
  }
  return n;
}

function checkId(command: string, id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(id)) {
    throw new UsageError(`${command}: the CVM or workflow id must be letters, digits, '.', '_', ':' or '-' (at most 128)`);
  }
  return id;
}

function uiLink(env: NodeJS.ProcessEnv, cfg: TemporalConfig, workflowId: string): string | undefined {
  const ui = env.TEMPORAL_UI_URL?.trim().replace(/\/+$/, '');
  if (!ui) return undefined;
  return `${ui}/namespaces/${encodeURIComponent(cfg.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** Values that must never reach the terminal, for the output redactor. */
function secretsOf(env: NodeJS.ProcessEnv, extra: EnvVar[] = []): string[] {
  const out = extra.map((e) => e.value);
  for (const name of ['PHALA_API_KEY', 'SIGNER_PRIVATE_KEY', 'TEMPORAL_API_KEY', 'SIM_ADMIN_TOKEN', 'CODEC_SERVER_TOKEN']) {
    const v = env[name];
    if (v) out.push(v, v.replace(/^0x/, ''));
  }
  for (const entry of (env.PAYLOAD_ENCRYPTION_KEYS ?? '').split(',')) {
    const key = entry.slice(entry.indexOf(':') + 1).trim();
    if (key) out.push(key);
  }
  return out;
}

async function connect(cfg: TemporalConfig): Promise<{ client: Client; connection: Connection }> {
  const dataConverter = createDataConverter(cfg.payloadKeys, { acceptUnencrypted: cfg.acceptUnencrypted });
  let connection: Connection;
  try {
    connection = await Connection.connect(cfg.connection);
  } catch (err) {
    throw new Error(`cannot reach Temporal at ${cfg.address} (${describeFailure(err).message})`);
  }
  return { client: new Client({ connection, namespace: cfg.namespace, dataConverter }), connection };
}

interface Context {
  io: Io;
  env: NodeJS.ProcessEnv;
  cfg: TemporalConfig;
  json: boolean;
  out: (line: string) => void;
  err: (line: string) => void;
  client: Client;
}

/** The update's input, checked against the schema the workflow runs too. */
function updateInputOf(values: Values, env: EnvVar[]): UpdateEnvInput {
  const cvm = values.cvm as string;
  const idProblem = cvmIdProblem(cvm);
  if (idProblem) throw new UsageError(`update: --cvm: ${idProblem}`);
  const requestId = values['request-id'] as string | undefined;
  const requestProblem = requestId === undefined ? undefined : requestIdProblem(requestId);
  if (requestProblem) throw new UsageError(`update: --request-id: ${requestProblem}`);
  const allowedKeys = parseKeys(values.keys as string | undefined, env);
  const confirmations = parseConfirmations(values.confirmations as string | undefined);
  const composeHashPolicy = parsePolicy(values.policy as string | undefined);
  const input: UpdateEnvInput = {
    cvmId: cvm,
    env,
    ...(allowedKeys !== undefined ? { allowedKeys } : {}),
    ...(confirmations !== undefined ? { confirmations } : {}),
    ...(composeHashPolicy !== undefined ? { composeHashPolicy } : {}),
    ...(requestId !== undefined ? { requestId } : {}),
  };
  const check = checkUpdateEnvInput(input);
  if (!check.ok) throw new UsageError(`update: ${describeInputProblems(check.problems)}`);
  // Before anything is sent: Temporal would refuse the payload only once it is under way.
  const tooLarge = payloadBudgetProblem(input);
  if (tooLarge) throw new UsageError(`update: ${tooLarge}`);
  return input;
}

async function runUpdate(ctx: Context, input: UpdateEnvInput, noWait: boolean): Promise<number> {
  const { cvmId } = input;
  const env = input.env as EnvVar[];
  let started;
  try {
    started = await startEnvUpdate(ctx.client, input, { taskQueue: ctx.cfg.taskQueue });
  } catch (err) {
    if (err instanceof UpdateAlreadyRunningError) {
      ctx.err(`error: ${err.message}`);
      ctx.err(`  see it:   ${DEFAULT_CLI} status ${cvmId}`);
      ctx.err(`  stop it:  ${DEFAULT_CLI} abort ${cvmId} --reason "<why>"`);
      if (ctx.json) ctx.out(JSON.stringify({ error: 'already_running', message: err.message, workflowId: err.workflowId }));
      return EXIT.failed;
    }
    if (err instanceof RequestAlreadyUsedError) {
      ctx.err(`error: ${err.message}`);
      if (ctx.json) ctx.out(JSON.stringify({ error: 'request_already_used', message: err.message, ...err.earlier }));
      return EXIT.failed;
    }
    throw err;
  }
  const { handle, workflowId, attached } = started;
  if (attached) {
    // The env given now is not what that update carries: it runs with the env it started with.
    ctx.err(`attached to the env update of CVM ${cvmId} that request id ${input.requestId} started earlier (workflow ${workflowId})`);
  } else {
    const keys = env.map((e) => e.key).join(', ');
    ctx.err(
      `started env update of CVM ${cvmId} (${env.length} variable${env.length === 1 ? '' : 's'}: ${keys}) as workflow ${workflowId} on task queue ${ctx.cfg.taskQueue}`,
    );
  }
  const link = uiLink(ctx.env, ctx.cfg, workflowId);
  if (link) ctx.err(`Temporal UI: ${link}`);
  if (noWait) {
    if (ctx.json) ctx.out(JSON.stringify({ workflowId, attached }));
    else {
      ctx.out(workflowId);
      ctx.err(`follow it with: ${DEFAULT_CLI} status ${cvmId}`);
    }
    return EXIT.ok;
  }

  const outcome = await followUpdate(handle, cvmId, { write: ctx.err, label: cvmId, signal: ctx.io.signal });
  if (!outcome) {
    ctx.err(`stopped following; the update goes on. Check it with: ${DEFAULT_CLI} status ${cvmId}`);
    if (ctx.json) ctx.out(JSON.stringify({ workflowId, following: false }));
    return 130;
  }
  if (outcome.ok) {
    if (ctx.json) ctx.out(JSON.stringify(outcome.result));
    else for (const line of formatResult(outcome.result)) ctx.out(line);
    return EXIT.ok;
  }
  const word = outcome.aborted ? 'aborted' : 'failed';
  ctx.err(`update ${word}: ${outcome.message}`);
  if (ctx.json) {
    ctx.out(
      JSON.stringify({ workflowId, outcome: word, error: outcome.message, failureType: outcome.failureType, status: outcome.status }),
    );
  }
  return EXIT.failed;
}

async function runStatus(ctx: Context, id: string): Promise<number> {
  const handle = envUpdateHandle(ctx.client, id);
  const d = await handle.describe();
  const running = d.status.name === 'RUNNING';
  let status: UpdateStatus | undefined;
  let statusError: string | undefined;
  try {
    // A closed workflow answers only if a worker replays it: do not wait long for that.
    status = await queryStatus(handle, running ? 10_000 : 3000);
  } catch (err) {
    statusError = describeFailure(err).message;
  }
  let result: unknown;
  let failure: string | undefined;
  if (!running) {
    try {
      result = await handle.result();
    } catch (err) {
      failure = describeFailure(err).message;
    }
  }
  const link = uiLink(ctx.env, ctx.cfg, d.workflowId);
  if (ctx.json) {
    ctx.out(
      JSON.stringify({
        workflowId: d.workflowId,
        runId: d.runId,
        state: d.status.name,
        status,
        statusError,
        result,
        error: failure,
        uiUrl: link,
      }),
    );
    return EXIT.ok;
  }
  ctx.out(`workflow             ${d.workflowId} (run ${d.runId})`);
  ctx.out(`state                ${d.status.name}${d.closeTime ? ` since ${d.closeTime.toISOString()}` : ''}`);
  if (status) for (const line of formatStatus(status)) ctx.out(line);
  else ctx.out(`status               not available (${statusError})`);
  if (result) for (const line of formatResult(result as Parameters<typeof formatResult>[0])) ctx.out(line);
  if (failure) ctx.out(`failure              ${failure}`);
  if (link) ctx.out(`Temporal UI          ${link}`);
  return EXIT.ok;
}

/** What the change waits for, before the action's answer: the context of an acceptance or a refusal. */
async function warnIfNotWaiting(ctx: Context, id: string): Promise<void> {
  try {
    const s = await queryStatus(envUpdateHandle(ctx.client, id), 5000);
    if (s.waitingFor) ctx.err(`it waits for: ${s.waitingFor}`);
  } catch {
    // The signal itself reports a missing or closed workflow.
  }
}

async function runSignal(ctx: Context, command: string, id: string, values: Values, positionals: string[]): Promise<number> {
  const handle = envUpdateHandle(ctx.client, id);
  const workflowId = handle.workflowId;
  const d = await handle.describe();
  if (d.status.name !== 'RUNNING') {
    ctx.err(`error: workflow ${workflowId} is not running (${d.status.name}); nothing to ${command}`);
    if (ctx.json) ctx.out(JSON.stringify({ workflowId, sent: false, state: d.status.name }));
    return EXIT.failed;
  }
  await warnIfNotWaiting(ctx, id);
  let answer: OperatorActionResult;
  try {
    if (command === 'retry') answer = await retryEnvUpdate(ctx.client, id);
    else if (command === 'abort') answer = await abortEnvUpdate(ctx.client, id, values.reason as string | undefined);
    else {
      const hash = positionals[1]!;
      if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) throw new UsageError('use-tx: the transaction hash must be 0x followed by 64 hex digits');
      answer = await useRegistrationTransaction(ctx.client, id, hash);
    }
  } catch (err) {
    if (!(err instanceof OperatorActionRefusedError)) throw err;
    ctx.err(`error: ${command} refused: ${err.reason}`);
    if (ctx.json) ctx.out(JSON.stringify({ workflowId, sent: false, refused: err.reason, action: err.action }));
    return EXIT.failed;
  }
  ctx.err(`sent ${command} to workflow ${workflowId}: ${answer.message}`);
  ctx.err(`follow it with: ${DEFAULT_CLI} status ${id}`);
  if (ctx.json) ctx.out(JSON.stringify({ workflowId, sent: true, signal: command, via: answer.via, answer: answer.message }));
  return EXIT.ok;
}

function parseSignerFilter(values: Values): { chainId?: number; address?: string } {
  const chain = values.chain as string | undefined;
  const address = values.address as string | undefined;
  if (chain !== undefined && !/^[1-9][0-9]{0,15}$/.test(chain))
    throw new UsageError('signer: --chain must be a chain id (a positive integer)');
  if (address !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(address))
    throw new UsageError('signer: --address must be 0x followed by 40 hex digits');
  return { ...(chain ? { chainId: Number(chain) } : {}), ...(address ? { address: address.toLowerCase() } : {}) };
}

async function runSignerStatus(ctx: Context, filter: { chainId?: number; address?: string }): Promise<number> {
  const running = (await listSigners(ctx.client)).filter(
    (s) => (filter.chainId === undefined || s.chainId === filter.chainId) && (filter.address === undefined || s.address === filter.address),
  );
  const statuses = await Promise.all(running.map((s) => getSignerStatus(ctx.client, s.chainId, s.address)));
  if (ctx.json) ctx.out(JSON.stringify({ signers: statuses }));
  else if (statuses.length === 0)
    ctx.out('no transaction manager is running' + (filter.chainId || filter.address ? ' for that filter' : ''));
  else for (const s of statuses) ctx.out(formatSignerStatus(s));
  return EXIT.ok;
}

function argvIsRollout(argv: string[]): boolean {
  return commandOf(argv).command === 'rollout';
}

function commandOf(args: string[]): { command: string; rest: string[] } {
  // The npm script passes a leading `--`: Node 20 itself scans every argument for
  // `--env-file <path>` up to the first `--` and exits when that file is missing.
  const argv = args[0] === '--' ? args.slice(1) : args;
  // Global flags may come before the command: `cli --env-from x status y`.
  const i = argv.findIndex((a, idx) => !a.startsWith('-') && !(idx > 0 && argv[idx - 1] === '--env-from'));
  if (i < 0) return { command: argv.includes('--help') || argv.includes('-h') || argv.length === 0 ? 'help' : '', rest: argv };
  return { command: argv[i]!, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
}

export async function main(argv: string[], io: Io): Promise<number> {
  // Until the settings are read, only the process env is known; the redactor widens later.
  let redact = createRedactor(secretsOf(io.env));
  const out = (line: string) => io.stdout(`${redact(line)}\n`);
  const err = (line: string) => io.stderr(`${redact(line)}\n`);
  let json = false;
  let client: Client | undefined;
  let connection: Connection | undefined;
  let target: string | undefined;
  try {
    const { command, rest } = commandOf(argv);
    if (command === '') throw new UsageError('no command given; try: help');
    if (!(command in COMMAND_OPTIONS)) {
      const shown = /^[a-z][a-z-]{0,30}$/i.test(command) ? `"${command}"` : '(not shown)';
      throw new UsageError(`unknown command ${shown}; commands: update, status, retry, abort, use-tx, signer, rollout, help`);
    }
    const { values, positionals } = parseCommandLine(command, rest);
    json = values.json === true;
    if (command === 'help' || values.help) {
      io.stdout(`${USAGE}\n`);
      return EXIT.ok;
    }
    // Everything checkable offline is checked before a connection is attempted.
    let newEnv: EnvVar[] = [];
    let updateInput: UpdateEnvInput | undefined;
    let rolloutEnv: EnvVar[] = [];
    let rolloutInput: RolloutInput | undefined;
    if (command === 'update') {
      if (typeof values.cvm !== 'string' || values.cvm === '') throw new UsageError('update: --cvm <id> is required');
      const collected = await collectEnv(values, io);
      newEnv = collected.env;
      redact = createRedactor(secretsOf(io.env, newEnv));
      if (collected.source === '-e' && newEnv.some((e) => e.value !== '')) err(ARGV_SECRETS_WARNING);
      updateInput = updateInputOf(values, newEnv);
    } else if (command === 'rollout') {
      const sub = positionals[0]!;
      if (!ROLLOUT_SUBCOMMANDS.includes(sub)) throw new UsageError(`rollout: the subcommands are ${ROLLOUT_SUBCOMMANDS.join(', ')}`);
      if (sub === 'start') {
        rolloutEnv = await readRolloutEnv(values, io);
        redact = createRedactor(secretsOf(io.env, rolloutEnv));
        rolloutInput = rolloutInputOf(values, rolloutEnv);
      } else {
        target = checkId('rollout', positionals[1]!);
        const startOnly = [
          'app',
          'cvms',
          'env-file',
          'keys',
          'concurrency',
          'canary',
          'auto-approve',
          'max-failures',
          'confirmations',
          'policy',
          'rollout-id',
          'request-id',
          'no-wait',
        ];
        const stray = startOnly.find((o) => values[o] !== undefined);
        if (stray) throw new UsageError(`rollout ${sub}: --${stray} belongs to rollout start`);
        if (values.reason !== undefined && sub !== 'abort') throw new UsageError(`rollout ${sub}: --reason belongs to rollout abort`);
      }
    } else if (command === 'signer') {
      if (positionals[0] !== 'status') throw new UsageError('signer: the only subcommand is status');
      parseSignerFilter(values);
    } else {
      target = checkId(command, positionals[0]!);
      if (command === 'use-tx' && !/^0x[0-9a-fA-F]{64}$/.test(positionals[1]!)) {
        throw new UsageError('use-tx: the transaction hash must be 0x followed by 64 hex digits');
      }
    }
    // Secrets given as *_FILE are read first, so the redactor knows them too.
    const env = withFileSecrets(loadSettings(io, values['env-from'] as string | undefined));
    redact = createRedactor(secretsOf(env, [...newEnv, ...rolloutEnv]));
    const cfg = loadTemporalConfig(env);
    ({ client, connection } = await connect(cfg));
    const ctx: Context = { io, env, cfg, json, out, err, client };
    if (command === 'update') return await runUpdate(ctx, updateInput!, values['no-wait'] === true);
    if (command === 'status') return await runStatus(ctx, positionals[0]!);
    if (command === 'signer') return await runSignerStatus(ctx, parseSignerFilter(values));
    if (command === 'rollout') {
      if (rolloutInput) return await runRolloutStart(ctx, rolloutInput, values['no-wait'] === true);
      return await runRolloutCommand(ctx, positionals[0]!, positionals[1]!, values);
    }
    return await runSignal(ctx, command, positionals[0]!, values, positionals);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError || e instanceof PayloadKeyConfigError) {
      err(`error: ${e.message}`);
      if (e instanceof UsageError) err('usage: npm run cli -- help');
      return EXIT.usage;
    }
    if (e instanceof WorkflowNotFoundError) {
      err(`error: no ${argvIsRollout(argv) ? 'rollout' : 'env update'} found for ${target ?? 'that id'}`);
      if (json) out(JSON.stringify({ error: 'not_found', id: target }));
      return EXIT.failed;
    }
    const { message } = describeFailure(e);
    err(`error: ${message}`);
    return EXIT.error;
  } finally {
    await connection?.close().catch(() => {});
  }
}

if (isMainModule(import.meta.url)) {
  const controller = new AbortController();
  // The first Ctrl-C stops following (the workflow keeps running); a second one exits hard.
  process.once('SIGINT', () => {
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  const code = await main(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
  // A lingering gRPC or timer handle must not keep an operator's shell waiting.
  process.exit(code);
}
