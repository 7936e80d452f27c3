import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServiceProcess {
  name: string;
  pid: number;
  /** Stops the process: SIGTERM, then SIGKILL after the grace time. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export interface StartServiceOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves true once the service answers; polled until readyTimeoutMs. */
  isReady: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

/**
 * Starts a long-running child with its output in a log file (not our stdout, so the
 * ready line stays the only thing a caller has to parse) and waits until it answers.
 */
export async function startService(opts: StartServiceOptions): Promise<ServiceProcess> {
  const fd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.command, opts.args, {
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  if (child.pid === undefined) {
    const err = await spawnError;
    throw new Error(`could not start ${opts.name} (${opts.command}): ${err.message}`);
  }
  const handle: ServiceProcess = {
    name: opts.name,
    pid: child.pid,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  for (;;) {
    if (exitedEarly) {
      throw new Error(`${opts.name} exited before it was ready; see ${opts.logFile}`);
    }
    if (await opts.isReady().catch(() => false)) return handle;
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${opts.name} was not ready within ${opts.readyTimeoutMs ?? 30_000} ms; see ${opts.logFile}`);
    }
    await sleep(50);
  }
}
