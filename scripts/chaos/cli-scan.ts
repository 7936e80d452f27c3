// The operator's view: the CLI's status commands, run as an operator would, with their output
// searched for secrets.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNeedles, type Hit, type Needle } from './leaks.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  args: string[];
  code: number;
  output: string;
}

function runCli(args: string[], envFile: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), ...args, '--env-from', envFile],
      { cwd: ROOT, timeout: 60_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ args, code, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

export interface CliScan {
  commands: number;
  /** Commands that exited non-zero, with the first line of their output. */
  failures: string[];
  hits: Hit[];
}

/** `status` (text and --json) of each CVM and `signer status`, two at a time. */
export async function scanCliOutput(opts: { envFile: string; cvmIds: string[]; needles: Needle[] }): Promise<CliScan> {
  const commands = [
    ...opts.cvmIds.flatMap((id) => [
      ['status', id],
      ['status', id, '--json'],
    ]),
    ['signer', 'status'],
  ];
  const runs: Run[] = [];
  for (let i = 0; i < commands.length; i += 2) {
    runs.push(...(await Promise.all(commands.slice(i, i + 2).map((args) => runCli(args, opts.envFile)))));
  }
  return {
    commands: runs.length,
    failures: runs.filter((r) => r.code !== 0).map((r) => `${r.args.join(' ')} → exit ${r.code}: ${r.output.trim().split('\n')[0]}`),
    hits: runs.flatMap((r) => findNeedles(r.output, opts.needles, `cli ${r.args.join(' ')}`)),
  };
}
