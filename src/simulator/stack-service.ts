/**
 * The simulator as a service of the local stack: seeded from the apps the stack deployed, state
 * kept in the stack's data dir, served in-process and closed by stop(). Credentials are fresh
 * for every stack run; the workspace (CVM ids, keys, applied envs) carries over.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackService } from '../dev/stack.ts';
import { behaviourFromEnv, type BehaviourConfig } from './config.ts';
import type { FaultConfigInput } from './faults.ts';
import { randomHex } from './keys.ts';
import { stackSeed } from './seed.ts';
import { startSimulator } from './server.ts';

export const SIMULATOR_STATE_FILE = 'simulator-state.json';
export const SIMULATOR_SEED_FILE = 'simulator-seed.json';

export interface SimulatorServiceOptions {
  /** Fixed port (default: SIM_PORT, else an ephemeral one). */
  port?: number;
  behaviour?: Partial<BehaviourConfig>;
  /** Faults active from the start (default: SIM_FAULTS, JSON). */
  faults?: FaultConfigInput;
}

function faultsFromEnv(raw: string | undefined): FaultConfigInput | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw) as FaultConfigInput;
  } catch {
    throw new Error('SIM_FAULTS must be JSON: {"rules": [...], "phase2Lag": [...]}');
  }
}

/** One entry of the stack's `cvms` list. */
export interface StackCvm {
  id: string;
  name: string;
  appId: string;
  kms: 'onchain' | 'phala';
  ownerIsSigner: boolean;
}

function writeAtomically(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

export function simulatorService(options: SimulatorServiceOptions = {}): StackService {
  return {
    name: 'phala-cloud-simulator',
    async start(ctx) {
      const seed = stackSeed({ chainId: ctx.chainId, apps: ctx.apps, signerAddress: ctx.signerAddress, kms: ctx.kms });
      const seedPath = join(ctx.dataDir, SIMULATOR_SEED_FILE);
      writeAtomically(seedPath, `${JSON.stringify(seed, null, 2)}\n`);
      const apiKey = `phak_sim_${randomHex(24)}`;
      const adminToken = `simadm_${randomHex(24)}`;
      const envPort = process.env.SIM_PORT ? Number(process.env.SIM_PORT) : undefined;
      const faults = options.faults ?? faultsFromEnv(process.env.SIM_FAULTS);
      const sim = await startSimulator({
        statePath: join(ctx.dataDir, SIMULATOR_STATE_FILE),
        seedPath,
        apiKey,
        adminToken,
        rpcUrl: ctx.rpcUrl,
        port: options.port ?? envPort ?? 0,
        behaviour: { ...behaviourFromEnv(process.env), ...(options.behaviour ?? {}) },
        ...(faults ? { faults } : {}),
        log: (line) => ctx.log(`simulator: ${line}`),
      });
      const cvms: StackCvm[] = sim.seeded.map((c) => ({
        id: c.id,
        name: c.name,
        appId: c.appId,
        kms: c.kms,
        ownerIsSigner: c.ownerIsSigner,
      }));
      ctx.log(`simulator at ${sim.apiUrl}: ${cvms.map((c) => `${c.name}=${c.id}`).join(', ')}`);
      return {
        info: { apiUrl: sim.apiUrl, apiKey, simAdminToken: adminToken, simUrl: sim.url, cvms },
        env: {
          PHALA_API_URL: sim.apiUrl,
          PHALA_API_KEY: apiKey,
          SIM_ADMIN_TOKEN: adminToken,
          SIM_URL: sim.url,
          SIM_CVMS: JSON.stringify(cvms),
        },
        stop: () => sim.close(),
      };
    },
  };
}
