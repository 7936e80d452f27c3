// Command-line options of `npm run bench`.
import { parseArgs } from 'node:util';

export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

export interface BenchOptions {
  /** Sequential runs per update kind; 0 skips the sequential section. */
  runs: number;
  /** On-chain updates of distinct apps' CVMs started at once; 0 skips the section. */
  concurrent: number;
  /** Fleet: app contracts, each with `cvmsPerApp` CVMs sharing one compose; 0 skips fleet and baseline. */
  apps: number;
  cvmsPerApp: number;
  /** Run the @phala/cloud SDK baseline beside the fleet. */
  baseline: boolean;
  blockTime: number;
  applyDelayMs: number | undefined;
  /** Run the worker from TypeScript through tsx instead of compiling it first (dist/, as the image runs it). */
  fromSource: boolean;
  /** Options for the worker's node itself, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
  workerNodeArgs: string[];
}

export const USAGE =
  'usage: npm run bench -- [--runs N (5)] [--concurrent M (10)] [--apps A (50)] [--cvms-per-app C (4)] [--no-baseline]\n' +
  '                        [--block-time S (1)] [--apply-delay-ms MS (simulator default)] [--from-source]\n' +
  '                        [--worker-node-args "ARGS"]\n' +
  '  the worker is compiled first (npm run build) and runs from dist/, as the image runs it; --from-source runs it\n' +
  '  through tsx instead. --worker-node-args passes options to its node, e.g. --worker-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof".';

/** The largest fleet the bench accepts: every CVM lives in one in-process simulator. */
export const MAX_FLEET_UPDATES = 2000;

function number(name: string, raw: string | undefined, fallback: number | undefined, min: number, integer: boolean): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new BenchUsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses the arguments after `--`; `help` means print USAGE and stop. Throws BenchUsageError. */
export function parseBenchOptions(argv: string[]): BenchOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string' },
        concurrent: { type: 'string' },
        apps: { type: 'string' },
        'cvms-per-app': { type: 'string' },
        'no-baseline': { type: 'boolean' },
        'block-time': { type: 'string' },
        'apply-delay-ms': { type: 'string' },
        'from-source': { type: 'boolean' },
        'worker-node-args': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new BenchUsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const opts: BenchOptions = {
    runs: number('runs', values.runs, 5, 0, true)!,
    concurrent: number('concurrent', values.concurrent, 10, 0, true)!,
    apps: number('apps', values.apps, 50, 0, true)!,
    cvmsPerApp: number('cvms-per-app', values['cvms-per-app'], 4, 1, true)!,
    baseline: !values['no-baseline'],
    blockTime: number('block-time', values['block-time'], 1, 0, false)!,
    applyDelayMs: number('apply-delay-ms', values['apply-delay-ms'], undefined, 0, true),
    fromSource: values['from-source'] === true,
    workerNodeArgs: (values['worker-node-args'] ?? '').split(/\s+/).filter(Boolean),
  };
  if (opts.apps * opts.cvmsPerApp > MAX_FLEET_UPDATES) {
    throw new BenchUsageError(`--apps × --cvms-per-app must be at most ${MAX_FLEET_UPDATES}, got ${opts.apps * opts.cvmsPerApp}`);
  }
  if (opts.runs + opts.concurrent + opts.apps === 0)
    throw new BenchUsageError('--runs, --concurrent and --apps are all 0: nothing to measure');
  return opts;
}
