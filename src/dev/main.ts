// `npm run stack`: the local stack in the foreground until Ctrl-C.
import { parseArgs } from 'node:util';
import { startStack, type StackService } from './stack.ts';
import { defaultServices } from './services.ts';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string', default: process.env.STACK_DATA_DIR ?? '.data' },
    'chain-id': { type: 'string', default: process.env.STACK_CHAIN_ID ?? '31337' },
    'block-time': { type: 'string', default: process.env.STACK_BLOCK_TIME ?? '1' },
    'temporal-port': { type: 'string', default: process.env.STACK_TEMPORAL_PORT },
    'ui-port': { type: 'string', default: process.env.STACK_TEMPORAL_UI_PORT },
    'rpc-port': { type: 'string', default: process.env.STACK_RPC_PORT },
  },
});

function intOption(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const services: StackService[] = defaultServices();
const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);

try {
  const stack = await startStack({
    dataDir: values['data-dir'],
    chainId: intOption('chain-id', values['chain-id']),
    blockTime: intOption('block-time', values['block-time']),
    temporalPort: intOption('temporal-port', values['temporal-port']),
    temporalUiPort: intOption('ui-port', values['ui-port']),
    anvilPort: intOption('rpc-port', values['rpc-port']),
    services,
    log,
  });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    await stack.stop();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  log(
    `ready in ${(stack.info.startedInMs / 1000).toFixed(1)} s; Temporal UI ${stack.info.temporalUiUrl}; env in ${stack.info.dataDir}/stack.env`,
  );
  process.stdout.write(`${JSON.stringify(stack.info)}\n`);
} catch (err) {
  log(`failed: ${(err as Error).message}`);
  process.exit(1);
}
