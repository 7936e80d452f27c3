// The worker as a child process (`node --import tsx src/worker.ts`), as a deployment runs it:
// the workflow bundle is built once by the parent and handed over with WORKFLOW_BUNDLE_PATH, so
// a start (or a restart after a crash) costs the worker's own work only.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefaultLogger } from '@temporalio/worker';
import { BUILT_BUNDLE_FILE, buildWorkflowBundle } from '../workflow-bundling.ts';
import { startService, type ServiceProcess } from './service-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Builds the workflow bundle with the production recipe (converters, metrics interceptors) into `path`. */
export async function writeWorkflowBundle(path: string): Promise<string> {
  writeFileSync(path, await buildWorkflowBundle(new DefaultLogger('WARN')));
  return path;
}

/**
 * The bundle for worker processes: `npm run build` already wrote one beside dist/worker.js (same
 * recipe) for `built` workers; otherwise it is built into `dir`.
 */
export function workerBundle(dir: string, built: boolean): Promise<string> {
  return built ? Promise.resolve(join(ROOT, 'dist', BUILT_BUNDLE_FILE)) : writeWorkflowBundle(join(dir, 'workflow-bundle.js'));
}

export interface WorkerProcessOptions {
  /** The worker's whole environment (stack variables, task queue, log level). */
  env: NodeJS.ProcessEnv;
  bundlePath: string;
  /** Appended to, so the output of every start of the same worker stays in one file. */
  logFile: string;
  name?: string;
  readyTimeoutMs?: number;
  /** Run the compiled worker (`dist/worker.js`, from `npm run build`), as the image does: no TypeScript loader at each start. */
  built?: boolean;
  /** Extra options for node itself, e.g. `--cpu-prof` to see where the worker's time goes. */
  nodeArgs?: string[];
}

/** Starts a worker process and resolves once it polls its task queue. */
export function startWorkerProcess(opts: WorkerProcessOptions): Promise<ServiceProcess> {
  // Only this start's output counts: an earlier start's ready line is in the same file.
  const from = existsSync(opts.logFile) ? statSync(opts.logFile).size : 0;
  return startService({
    name: opts.name ?? 'worker',
    command: process.execPath,
    args: [
      ...(opts.nodeArgs ?? []),
      ...(opts.built ? [join(ROOT, 'dist', 'worker.js')] : ['--import', 'tsx', join(ROOT, 'src', 'worker.ts')]),
    ],
    cwd: ROOT,
    logFile: opts.logFile,
    env: { ...opts.env, WORKFLOW_BUNDLE_PATH: opts.bundlePath },
    // worker.ts logs this (INFO) once its worker runs.
    isReady: async () => readFileSync(opts.logFile).subarray(from).toString('utf8').includes('polling task queue'),
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
  });
}
