// `npm run sim`: the Phala Cloud API simulator on its own, in the foreground until Ctrl-C.
//
// It reads the chain and the deployed apps from a running (or earlier) local stack's stack.json
// when there is one, and keeps its own state dir so it never shares a state file with the
// simulator the stack runs. Without a stack it serves a Phala-KMS CVM only.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { behaviourFromEnv } from './config.ts';
import type { FaultConfigInput } from './faults.ts';
import { randomHex } from './keys.ts';
import { stackSeed, type SeedConfig } from './seed.ts';
import { startSimulator } from './server.ts';

const { values } = parseArgs({
  options: {
    'stack-dir': { type: 'string', default: process.env.STACK_DATA_DIR ?? '.data' },
    'data-dir': { type: 'string', default: process.env.SIM_DATA_DIR },
    host: { type: 'string', default: process.env.SIM_HOST ?? '127.0.0.1' },
    port: { type: 'string', default: process.env.SIM_PORT ?? '8787' },
    'rpc-url': { type: 'string', default: process.env.CHAIN_RPC_URL },
    seed: { type: 'string' },
    faults: { type: 'string', default: process.env.SIM_FAULTS },
  },
});

const log = (line: string) => process.stderr.write(`[sim] ${line}\n`);

function fail(message: string): never {
  log(message);
  process.exit(2);
}

interface StackJson {
  rpcUrl?: string;
  chainId?: number;
  signerAddress?: string;
  apps?: { name: string; appId: string; owner: string }[];
}

const stackDir = resolve(values['stack-dir']!);
const dataDir = resolve(values['data-dir'] ?? join(stackDir, 'sim-standalone'));
mkdirSync(dataDir, { recursive: true });

const stackJsonPath = join(stackDir, 'stack.json');
const stack: StackJson | undefined = existsSync(stackJsonPath) ? (JSON.parse(readFileSync(stackJsonPath, 'utf8')) as StackJson) : undefined;
const rpcUrl = values['rpc-url'] ?? stack?.rpcUrl;

let seedPath = values.seed ? resolve(values.seed) : undefined;
if (!seedPath) {
  let seed: SeedConfig;
  if (stack?.apps && stack.chainId !== undefined && stack.signerAddress) {
    seed = stackSeed({ chainId: stack.chainId, apps: stack.apps, signerAddress: stack.signerAddress });
  } else {
    log(`no stack found at ${stackJsonPath}: serving a Phala-KMS CVM only`);
    seed = { chainId: null, apps: [{ name: 'app-phala-1', kms: 'phala' }], cvms: [{ name: 'cvm-phala', app: 'app-phala-1' }] };
  }
  seedPath = join(dataDir, 'simulator-seed.json');
  const tmp = `${seedPath}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(seed, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, seedPath);
}

let faults: FaultConfigInput | undefined;
if (values.faults) {
  const text = values.faults.startsWith('@') ? readFileSync(values.faults.slice(1), 'utf8') : values.faults;
  try {
    faults = JSON.parse(text) as FaultConfigInput;
  } catch {
    fail('--faults must be JSON (or @file holding JSON)');
  }
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got ${JSON.stringify(values.port)}`);

// Credentials are taken from the environment when given, so a client config can stay fixed.
const apiKey = process.env.PHALA_API_KEY || `phak_sim_${randomHex(24)}`;
const adminToken = process.env.SIM_ADMIN_TOKEN || `simadm_${randomHex(24)}`;

try {
  const sim = await startSimulator({
    statePath: join(dataDir, 'simulator-state.json'),
    seedPath,
    host: values.host!,
    port,
    apiKey,
    adminToken,
    ...(rpcUrl ? { rpcUrl } : {}),
    behaviour: behaviourFromEnv(process.env),
    ...(faults ? { faults } : {}),
    log,
  });
  const cvms = sim.seeded.map((c) => ({ id: c.id, name: c.name, appId: c.appId, kms: c.kms, ownerIsSigner: c.ownerIsSigner }));
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    await sim.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  log(`ready at ${sim.apiUrl} (state in ${dataDir})`);
  process.stdout.write(
    `${JSON.stringify({ ready: true, apiUrl: sim.apiUrl, apiKey, simAdminToken: adminToken, simUrl: sim.url, cvms })}\n`,
  );
} catch (err) {
  fail(`failed: ${(err as Error).message}`);
}
