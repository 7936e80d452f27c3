// Worker processes that are SIGKILLed in turn and started again, as a host that keeps crashing
// would do to them. A worker that exits on its own (e.g. while the Temporal server is away)
// is started again too.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceProcess } from '../../src/dev/service-process.ts';
import { startWorkerProcess } from '../../src/dev/worker-process.ts';

interface Slot {
  index: number;
  logFile: string;
  /** The running (ready) process, if any, and since when it polls. */
  proc: ServiceProcess | undefined;
  readyAt: number;
  starting: Promise<void> | undefined;
}

export interface WorkerPoolStats {
  kills: number;
  /** Turns on which the worker was still starting or had polled for less than a period, so it was left alone. */
  skipped: number;
  starts: number;
  /** Exits nobody asked for. */
  crashes: number;
  failedStarts: number;
}

export class WorkerPool {
  readonly stats: WorkerPoolStats = { kills: 0, skipped: 0, starts: 0, crashes: 0, failedStarts: 0 };
  readonly #slots: Slot[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #bundlePath: string;
  readonly #say: (line: string) => void;
  #stopping = false;
  #killer: NodeJS.Timeout | undefined;
  #turn = 0;
  readonly #killedPids = new Set<number>();

  readonly #built: boolean;

  constructor(opts: {
    count: number;
    env: NodeJS.ProcessEnv;
    bundlePath: string;
    logDir: string;
    say: (line: string) => void;
    built?: boolean;
  }) {
    this.#env = opts.env;
    this.#built = opts.built === true;
    this.#bundlePath = opts.bundlePath;
    this.#say = opts.say;
    this.#slots = Array.from({ length: opts.count }, (_, index) => ({
      index,
      logFile: join(opts.logDir, `worker-${index + 1}.log`),
      proc: undefined,
      readyAt: 0,
      starting: undefined,
    }));
  }

  get logFiles(): string[] {
    return this.#slots.map((s) => s.logFile);
  }

  /** Starts every worker and resolves once all poll. */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((s) => this.#start(s)));
    if (this.#slots.some((s) => !s.proc)) throw new Error('a worker process did not start; see its log in the data dir');
  }

  #start(slot: Slot): Promise<void> {
    slot.starting ??= (async () => {
      while (!this.#stopping) {
        this.stats.starts++;
        try {
          const proc = await startWorkerProcess({
            env: this.#env,
            bundlePath: this.#bundlePath,
            logFile: slot.logFile,
            name: `worker ${slot.index + 1}`,
            readyTimeoutMs: 60_000,
            built: this.#built,
          });
          if (this.#stopping) {
            await proc.stop(5000);
            return;
          }
          slot.proc = proc;
          slot.readyAt = performance.now();
          void proc.exited.then(() => this.#exited(slot, proc));
          return;
        } catch (err) {
          this.stats.failedStarts++;
          this.#say(`  worker ${slot.index + 1} did not start (${(err as Error).message.split('\n')[0]}); trying again`);
          await sleep(500);
        }
      }
    })().finally(() => {
      slot.starting = undefined;
    });
    return slot.starting;
  }

  #exited(slot: Slot, proc: ServiceProcess): void {
    if (slot.proc === proc) slot.proc = undefined;
    if (this.#stopping) return;
    if (!this.#killedPids.delete(proc.pid)) {
      this.stats.crashes++;
      this.#say(`  worker ${slot.index + 1} (pid ${proc.pid}) exited on its own; starting it again`);
    }
    void this.#start(slot);
  }

  /**
   * Every `everyMs`, SIGKILLs the next worker in turn and starts it again, `maxKills` times at most. A worker that has
   * not yet polled for `everyMs` is spared on its turn: on a slow host a start takes longer
   * than the period, and killing each worker the moment it polls would stop all progress
   * rather than test recovery from crashes.
   */
  startKilling(everyMs: number, maxKills = Infinity): void {
    this.#killer = setInterval(() => {
      if (this.stats.kills >= maxKills) return this.stopKilling();
      const slot = this.#slots[this.#turn++ % this.#slots.length]!;
      const proc = slot.proc;
      if (!proc || performance.now() - slot.readyAt < everyMs) {
        this.stats.skipped++;
        return;
      }
      this.#killedPids.add(proc.pid);
      this.stats.kills++;
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // Already gone: its exit handler starts it again.
      }
    }, everyMs);
  }

  stopKilling(): void {
    if (this.#killer) clearInterval(this.#killer);
    this.#killer = undefined;
  }

  /** Stops killing, waits for starts under way and stops every worker. */
  async stop(): Promise<void> {
    this.stopKilling();
    this.#stopping = true;
    await Promise.all(this.#slots.map((s) => s.starting?.catch(() => {})));
    await Promise.all(this.#slots.map((s) => s.proc?.stop(10_000)));
  }
}
