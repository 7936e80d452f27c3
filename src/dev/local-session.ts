// What `npm run demo` and `npm run bench` share: a throwaway local stack with a worker (in
// process, or a child process for the bench) and a client, which Ctrl-C stops cleanly however
// far the start-up got.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createDataConverter } from '../codec.ts';
import { createWorker } from '../worker.ts';
import type { ServiceProcess } from './service-process.ts';
import { defaultServices } from './services.ts';
import { startStack, type Stack } from './stack.ts';
import { startWorkerProcess, workerBundle } from './worker-process.ts';

type Say = (line: string) => void;
export type Step = <T>(p: Promise<T>) => Promise<T>;

/**
 * Worker logs at INFO would drown the program's own output. `shutdownSignals: []` keeps the
 * runtime from stopping the worker on a signal, for callers whose handler does that itself.
 */
export function installQuietRuntime(shutdownSignals?: NodeJS.Signals[]): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals });
  } catch {
    // Another runtime is installed already: its logger stays.
  }
}

export interface Interruptible {
  signal: AbortSignal;
  /** For races of the caller's own; rejects with its failure on the first signal. */
  interrupted: Promise<never>;
  step: Step;
  dispose(): void;
}

/**
 * The first signal asks for a clean stop, the second says it is still stopping, the third
 * quits at once: stopping Temporal and anvil takes a few seconds that a user may not grant.
 */
export function interruptible(opts: { say: Say; onceMore: string; failure: (message: string) => Error }): Interruptible {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals === 1) {
      opts.say('\ninterrupted: stopping the worker and the stack…');
      controller.abort();
    } else if (signals >= 3) {
      process.exit(130);
    } else {
      opts.say(`still stopping (${opts.onceMore} to quit at once, leaving processes behind)`);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const interrupted = new Promise<never>((_, reject) =>
    controller.signal.addEventListener('abort', () => reject(opts.failure('interrupted')), { once: true }),
  );
  interrupted.catch(() => {});
  return {
    signal: controller.signal,
    interrupted,
    // Racing leaves what a step started running: LocalSession.close still awaits and stops it.
    step: (p) => Promise.race([p, interrupted]),
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * A local stack in a temp dir, a worker and a client, started one at a time through `step`
 * so the program can do its own checks in between. `close` stops whatever was started, even
 * what an interrupted step left still starting.
 */
export class LocalSession {
  readonly dataDir: string;
  /** A queue of its own: a worker left over from `npm run worker` must not take this session's tasks. */
  readonly taskQueue: string;
  readonly #say: Say;
  readonly #step: Step;
  #stack: Promise<Stack> | undefined;
  #worker: ReturnType<typeof createWorker> | undefined;
  #workerRun: Promise<void> | undefined;
  #connection: Connection | undefined;
  #workerProcess: Promise<ServiceProcess> | undefined;

  /** `name` tags the temp dir (`dce-<name>-…`) and the task queue (`<name>-…`). */
  constructor(opts: { name: string; say: Say; step: Step }) {
    this.dataDir = mkdtempSync(join(tmpdir(), `dce-${opts.name}-`));
    this.taskQueue = `${opts.name}-${randomBytes(4).toString('hex')}`;
    this.#say = opts.say;
    this.#step = opts.step;
  }

  startStack(opts: { blockTime?: number; log: Say }): Promise<Stack> {
    this.#stack = startStack({ dataDir: this.dataDir, blockTime: opts.blockTime, services: defaultServices(), log: opts.log });
    return this.#step(this.#stack);
  }

  /** Runs a worker on this session's task queue and resolves to a client of the stack's namespace. */
  async startWorkerAndClient(stack: Stack): Promise<Client> {
    const env = { ...process.env, ...stack.env, TEMPORAL_TASK_QUEUE: this.taskQueue };
    // A short grace: a session ends only when nothing is in flight, or on Ctrl-C when nobody waits for results.
    this.#worker = createWorker({ env, worker: { shutdownGraceTime: '3 seconds' } });
    const { worker } = await this.#step(this.#worker);
    this.#workerRun = worker.run();
    this.#workerRun.catch(() => {});
    return this.#client(stack);
  }

  /**
   * Runs the worker as a child process (`node --import tsx src/worker.ts` with the stack's
   * environment, log in the data dir), so its memory can be measured on its own, and resolves
   * to it and a client once it polls this session's task queue. The workflow bundle is built
   * here first and handed over with WORKFLOW_BUNDLE_PATH, as a deployment would: the worker's
   * memory is then its own work's, not the bundler's. `built`: the compiled dist/worker.js
   * with the bundle the build wrote, as the image runs it; `nodeArgs`: options for node itself
   * (e.g. --cpu-prof).
   */
  async startWorkerProcessAndClient(
    stack: Stack,
    opts: { built?: boolean; nodeArgs?: string[] } = {},
  ): Promise<{ client: Client; worker: ServiceProcess }> {
    const bundlePath = await this.#step(workerBundle(this.dataDir, opts.built === true));
    this.#workerProcess = startWorkerProcess({
      env: { ...process.env, ...stack.env, TEMPORAL_TASK_QUEUE: this.taskQueue, LOG_LEVEL: 'INFO' },
      bundlePath,
      logFile: join(this.dataDir, 'worker.log'),
      ...(opts.built ? { built: true } : {}),
      ...(opts.nodeArgs?.length ? { nodeArgs: opts.nodeArgs } : {}),
    });
    const worker = await this.#step(this.#workerProcess);
    return { client: await this.#client(stack), worker };
  }

  /** A client of the stack's namespace, closed by `close`. */
  client(stack: Stack): Promise<Client> {
    return this.#client(stack);
  }

  async #client(stack: Stack): Promise<Client> {
    this.#connection = await this.#step(Connection.connect({ address: stack.info.temporalAddress }));
    return new Client({
      connection: this.#connection,
      namespace: stack.info.temporalNamespace,
      dataConverter: createDataConverter(stack.env.PAYLOAD_ENCRYPTION_KEYS!),
    });
  }

  /** Stops client, worker and stack in that order; `keepLogs` leaves the data dir for a look at the logs. */
  async close(keepLogs: boolean): Promise<void> {
    this.#say('stopping the worker and the stack…');
    // After an interrupt, a client retry timer can still fire on the closed connection and
    // throw from a timer; mid-shutdown that is noise, and crashing on it would strand anvil.
    process.on('uncaughtException', ignoreClosedChannel);
    await this.#connection?.close().catch(() => {});
    const created = await this.#worker?.catch(() => undefined);
    if (created) {
      if (created.worker.getState() === 'RUNNING') created.worker.shutdown();
      await this.#workerRun?.catch(() => {});
      await created.connection.close().catch(() => {});
    }
    // SIGTERM drains it (nothing is in flight at the end of a run); SIGKILL if it takes longer.
    await (await this.#workerProcess?.catch(() => undefined))?.stop(10_000);
    const stack = await this.#stack?.catch(() => undefined);
    await stack?.stop().catch((err: unknown) => this.#say(`could not stop the stack cleanly: ${(err as Error).message}`));
    if (keepLogs) this.#say(`logs kept in ${this.dataDir} (temporal.log, anvil.log${this.#workerProcess ? ', worker.log' : ''})`);
    else rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function ignoreClosedChannel(err: Error): void {
  if (!/Channel has been shut down/.test(err.message)) throw err;
}
