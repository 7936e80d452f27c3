// Command-line options of `npm run chaos`, parsed like the bench's.
import { parseArgs } from 'node:util';

export class ChaosUsageError extends Error {
  override readonly name = 'ChaosUsageError';
}

export interface ChaosOptions {
  apps: number;
  cvmsPerApp: number;
  workers: number;
  /** A worker is SIGKILLed (round robin) and restarted this often. */
  killEveryS: number;
  /** Kills in all; unlimited (Infinity) unless given or --short. */
  maxKills: number;
  /** When the Temporal server is restarted, counted from the start of the updates. */
  temporalRestartAfterS: number;
  /** Share of API answers turned into 5xx or 429. */
  apiFaultRate: number;
  /** Share of the workers' JSON-RPC calls answered with an error. */
  rpcFaultRate: number;
  reorgDepth: number;
  blockTime: number;
  /** An update not settled after this long counts as "other". */
  timeoutS: number;
  seed: number;
  short: boolean;
  /** Workers run the compiled dist/worker.js (built at the start), as the image does. */
  built: boolean;
}

export const USAGE =
  'usage: npm run chaos -- [--short] [--apps A (25)] [--cvms-per-app C (4)] [--workers W (2)] [--kill-every S (2)] [--max-kills N]\n' +
  '                        [--temporal-restart-after S (15)] [--api-fault-rate R (0.2)] [--rpc-fault-rate R (0.1)]\n' +
  '                        [--reorg-depth D (3)] [--block-time S (1)] [--timeout S (600)] [--seed N] [--built]\n' +
  '  --short: the CI version: 5 apps × 2 CVMs, 4 kills, Temporal restarted after 5 s, a 240 s timeout (other options still apply)\n' +
  '  --built: compile the worker first (npm run build) and restart it from dist/, as the image runs it';

function number(name: string, raw: string | undefined, fallback: number, min: number, max: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new ChaosUsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses the arguments after `--`; `help` means print USAGE and stop. Throws ChaosUsageError. */
export function parseChaosOptions(argv: string[]): ChaosOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        short: { type: 'boolean' },
        built: { type: 'boolean' },
        apps: { type: 'string' },
        'cvms-per-app': { type: 'string' },
        workers: { type: 'string' },
        'kill-every': { type: 'string' },
        'max-kills': { type: 'string' },
        'temporal-restart-after': { type: 'string' },
        'api-fault-rate': { type: 'string' },
        'rpc-fault-rate': { type: 'string' },
        'reorg-depth': { type: 'string' },
        'block-time': { type: 'string' },
        timeout: { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ChaosUsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const short = values.short === true;
  return {
    short,
    built: values.built === true,
    apps: number('apps', values.apps, short ? 5 : 25, 1, 200, true),
    cvmsPerApp: number('cvms-per-app', values['cvms-per-app'], short ? 2 : 4, 1, 20, true),
    workers: number('workers', values.workers, 2, 1, 8, true),
    killEveryS: number('kill-every', values['kill-every'], 2, 0.5, 3600, false),
    maxKills: number('max-kills', values['max-kills'], short ? 4 : Infinity, 1, Infinity, true),
    temporalRestartAfterS: number('temporal-restart-after', values['temporal-restart-after'], short ? 5 : 15, 0, 3600, false),
    apiFaultRate: number('api-fault-rate', values['api-fault-rate'], 0.2, 0, 0.9, false),
    rpcFaultRate: number('rpc-fault-rate', values['rpc-fault-rate'], 0.1, 0, 0.9, false),
    reorgDepth: number('reorg-depth', values['reorg-depth'], 3, 1, 64, true),
    blockTime: number('block-time', values['block-time'], 1, 0.2, 60, false),
    timeoutS: number('timeout', values.timeout, short ? 240 : 600, 10, 86_400, false),
    seed: number('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1, true),
  };
}
