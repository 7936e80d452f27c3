// The baseline backend as a process of its own: reads {setup, single, fleet} as JSON on stdin
// and the signer key from BENCH_SIGNER_KEY, runs the single update alone and then the fleet all
// at once, and prints one JSON line with the outcomes and its own peak RSS during the fleet.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Hex } from 'viem';
import { createBaselineBackend, type BaselineOutcome, type BaselineSetup, type BaselineUpdate } from './baseline.ts';
import { readProcessMemory, resetPeak } from './process-memory.ts';

export interface BaselineInput {
  setup: BaselineSetup;
  single: BaselineUpdate;
  fleet: BaselineUpdate[];
}

export interface BaselineOutput {
  single: BaselineOutcome;
  /** When the single update started, as epoch ms (performance.timeOrigin based), for its floor. */
  singleStartedAtEpochMs: number;
  fleet: BaselineOutcome[];
  fleetWallMs: number;
  peakRssMb: number | null;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as BaselineInput;
  const key = process.env.BENCH_SIGNER_KEY as Hex | undefined;
  if (!key) throw new Error('BENCH_SIGNER_KEY is not set');
  const backend = createBaselineBackend(input.setup, key);

  const singleStart = performance.now();
  const single = await backend.update(input.single, singleStart);
  process.stderr.write(`  baseline single update: ${single.ok ? `${Math.round(single.ms)} ms` : `FAILED: ${single.error}`}\n`);

  const reset = resetPeak(process.pid);
  const t0 = performance.now();
  let done = 0;
  const fleet = await Promise.all(
    input.fleet.map(async (u) => {
      const o = await backend.update(u, t0);
      if (++done % 50 === 0 || done === input.fleet.length) process.stderr.write(`  baseline: ${done}/${input.fleet.length} settled\n`);
      return o;
    }),
  );
  const fleetWallMs = Math.max(...fleet.map((o) => o.ms), 0);
  const output: BaselineOutput = {
    single,
    singleStartedAtEpochMs: performance.timeOrigin + singleStart,
    fleet,
    fleetWallMs,
    peakRssMb: reset ? readProcessMemory(process.pid).peakMb : null,
  };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

/** Runs the baseline in a child process (killed if the run is interrupted) and resolves to its output. */
export function runBaselineProcess(input: BaselineInput, signerKey: Hex, signal: AbortSignal): Promise<BaselineOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, BENCH_SIGNER_KEY: signerKey },
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    const onAbort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as BaselineOutput);
      else reject(new Error(`the baseline process ended with ${sig ?? `code ${code}`}`));
    });
    child.stdin.end(JSON.stringify(input));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`baseline failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
