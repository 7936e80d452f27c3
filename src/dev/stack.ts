import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { mnemonicToAccount } from 'viem/accounts';
import { toHex, type Address, type Hex, type HDAccount } from 'viem';
import { ANVIL_MNEMONIC, findAnvilBinary, startAnvil, type Anvil } from './anvil.ts';
import { deployApps, type AppSpec, type DeployedApp } from './deploy-apps.ts';
import { ensureLocalKms, type LocalKms } from './local-kms.ts';
import { ensureTemporalCli, startTemporalServer, type TemporalServer } from './temporal-server.ts';
import { StackLock } from './stack-lock.ts';
import { formatEnvFile, readEnvFile } from './env-file.ts';
import { freePort } from './free-port.ts';
import { startCodecServer } from '../codec-server.ts';
import { generatePayloadKeySpec } from '../codec.ts';

/** Apps deployed by default: what the simulator's seed workspace needs (issue 4). */
export const DEFAULT_APPS: AppSpec[] = [
  { name: 'app-signer-1', owner: 'signer' },
  { name: 'app-signer-shared', owner: 'signer' },
  { name: 'app-foreign', owner: 'other' },
];

export const DEFAULT_TASK_QUEUE = 'cvm-envs';

export interface StackContext {
  dataDir: string;
  rpcUrl: string;
  chainId: number;
  apps: DeployedApp[];
  signerAddress: Address;
  /** The DstackKms the apps are registered with, and the key the simulated KMS signs with. */
  kms: LocalKms;
  log: (line: string) => void;
}

/** A service the stack starts after the chain and Temporal, e.g. the Phala Cloud simulator. */
export interface StackService {
  name: string;
  start(ctx: StackContext): Promise<{
    /** Merged into the ready line and stack.json. */
    info: Record<string, unknown>;
    /** Merged into stack.env. */
    env: Record<string, string>;
    pid?: number;
    binary?: string;
    stop(): Promise<void>;
  }>;
}

export interface StackOptions {
  dataDir?: string;
  chainId?: number;
  /** Seconds between blocks (default 1, like a fast L2); 0 mines a block per transaction. */
  blockTime?: number;
  temporalPort?: number;
  temporalUiPort?: number;
  anvilPort?: number;
  namespace?: string;
  apps?: AppSpec[];
  services?: StackService[];
  log?: (line: string) => void;
}

export interface StackInfo {
  ready: true;
  startedInMs: number;
  dataDir: string;
  temporalAddress: string;
  temporalNamespace: string;
  temporalUiUrl: string;
  /** The payload codec server the UI decodes through (its token is in stack.env only). */
  codecServerUrl: string;
  taskQueue: string;
  rpcUrl: string;
  chainId: number;
  signerAddress: Address;
  apps: { name: string; appId: Address; owner: Address; ownerIsSigner: boolean }[];
  [extra: string]: unknown;
}

export interface Stack {
  info: StackInfo;
  /** Variables the worker and CLI read; also written to stack.env. Holds the signer key. */
  env: Record<string, string>;
  accounts: { signer: HDAccount; other: HDAccount };
  /** Private keys of the anvil dev accounts: public knowledge, for tests only. */
  devKeys: { signer: Hex; other: Hex };
  stop(): Promise<void>;
  /** Stops the Temporal server and starts it again on the same port and database (fault drills). */
  restartTemporal(): Promise<void>;
}

function writeAtomically(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

function devAccount(index: number): { account: HDAccount; key: Hex } {
  const account = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index });
  const key = account.getHdKey().privateKey;
  if (!key) throw new Error('could not derive a dev key');
  return { account, key: toHex(key) };
}

/**
 * Starts Temporal, anvil, our contracts and any extra services, in that order, and
 * writes what a worker or CLI needs to connect. Everything started is stopped by stop(),
 * also when a later step fails.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const dataDir = resolve(options.dataDir ?? '.data');
  mkdirSync(dataDir, { recursive: true });

  // Fail on missing binaries before taking the lock or starting anything.
  const temporalCli = await ensureTemporalCli({ log });
  const anvilBin = findAnvilBinary();

  const lock = new StackLock(join(dataDir, 'stack.lock'));
  const reaped = lock.acquire();
  if (reaped.length > 0) log(`stopped ${reaped.length} process(es) left by a crashed stack: ${reaped.join(', ')}`);

  const stoppers: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stoppers.reverse()) await stop().catch(() => {});
    stoppers.length = 0;
    lock.release();
  };

  try {
    const chainId = options.chainId ?? 31337;
    const stackEnvFile = join(dataDir, 'stack.env');
    // Kept across restarts: history written with a key must stay readable.
    const payloadKeys = readEnvFile(stackEnvFile).PAYLOAD_ENCRYPTION_KEYS ?? generatePayloadKeySpec('k1');

    // The codec server lets the Temporal UI show decrypted payloads; it must exist
    // before the UI is configured with its address.
    const uiPort = options.temporalUiPort ?? (await freePort());
    const codecToken = randomBytes(24).toString('base64url');
    const codec = await startCodecServer({
      port: 0,
      keysSpec: payloadKeys,
      token: codecToken,
      allowedOrigins: [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
      allowPathToken: true,
    });
    stoppers.push(() => codec.close());

    const temporalOptions = {
      dbFile: join(dataDir, 'temporal.sqlite'),
      logFile: join(dataDir, 'temporal.log'),
      namespace: options.namespace,
      port: options.temporalPort,
      uiPort,
      codecEndpoint: `${codec.url}/t/${codecToken}`,
    };
    // Replaced by restartTemporal; the stopper stops whichever runs.
    let currentTemporal: TemporalServer | undefined;
    const [temporal, anvil] = await Promise.all([
      startTemporalServer(temporalOptions).then((t: TemporalServer) => {
        currentTemporal = t;
        stoppers.push(() => currentTemporal!.stop());
        lock.addChild('temporal', t.process.pid, temporalCli);
        log(`temporal server ready at ${t.address}, UI ${t.uiUrl}`);
        return t;
      }),
      startAnvil({
        logFile: join(dataDir, 'anvil.log'),
        chainId,
        port: options.anvilPort,
        blockTime: options.blockTime ?? 1,
        stateFile: join(dataDir, `anvil-${chainId}.json`),
      }).then((a: Anvil) => {
        stoppers.push(a.stop);
        lock.addChild('anvil', a.process.pid, anvilBin);
        log(`anvil ready at ${a.rpcUrl} (chain ${a.chainId})`);
        return a;
      }),
    ]);

    const signer = devAccount(0);
    const other = devAccount(1);
    const deploymentsFile = join(dataDir, `deployments-${chainId}.json`);
    const previous = existsSync(deploymentsFile) ? (JSON.parse(readFileSync(deploymentsFile, 'utf8')) as DeployedApp[]) : undefined;
    const kms = await ensureLocalKms({ dataDir, rpcUrl: anvil.rpcUrl, chainId, deployer: signer.account });
    log(`DstackKms at ${kms.address}`);
    const apps = await deployApps({
      kms: kms.address,
      rpcUrl: anvil.rpcUrl,
      chainId,
      deployer: signer.account,
      owners: { signer: signer.account.address, other: other.account.address },
      apps: options.apps ?? DEFAULT_APPS,
      previous,
    });
    writeAtomically(deploymentsFile, JSON.stringify(apps, null, 2));
    log(`app contracts: ${apps.map((a) => `${a.name}=${a.appId}`).join(', ')}`);

    const info: StackInfo = {
      ready: true,
      startedInMs: 0,
      dataDir,
      temporalAddress: temporal.address,
      temporalNamespace: temporal.namespace,
      temporalUiUrl: temporal.uiUrl,
      codecServerUrl: codec.url,
      taskQueue: DEFAULT_TASK_QUEUE,
      rpcUrl: anvil.rpcUrl,
      chainId,
      signerAddress: signer.account.address,
      kmsAddress: kms.address,
      apps: apps.map((a) => ({ ...a, ownerIsSigner: a.owner === signer.account.address })),
    };
    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TEMPORAL_TASK_QUEUE: DEFAULT_TASK_QUEUE,
      TEMPORAL_UI_URL: temporal.uiUrl,
      CHAIN_RPC_URL: anvil.rpcUrl,
      CHAIN_ID: String(chainId),
      SIGNER_PRIVATE_KEY: signer.key,
      PAYLOAD_ENCRYPTION_KEYS: payloadKeys,
      CODEC_SERVER_URL: codec.url,
      CODEC_SERVER_TOKEN: codecToken,
    };

    for (const service of options.services ?? []) {
      const s = await service.start({
        dataDir,
        rpcUrl: anvil.rpcUrl,
        chainId,
        apps,
        signerAddress: signer.account.address,
        kms,
        log,
      });
      stoppers.push(s.stop);
      if (s.pid !== undefined && s.binary) lock.addChild(service.name, s.pid, s.binary);
      Object.assign(info, s.info);
      Object.assign(env, s.env);
      log(`${service.name} ready`);
    }

    info.startedInMs = Math.round(performance.now() - started);
    writeAtomically(join(dataDir, 'stack.json'), `${JSON.stringify(info, null, 2)}\n`);
    writeAtomically(
      stackEnvFile,
      formatEnvFile(env, 'Written by the local stack; the worker and CLI read these. Holds dev keys: do not commit.'),
    );
    return {
      info,
      env,
      accounts: { signer: signer.account, other: other.account },
      devKeys: { signer: signer.key, other: other.key },
      stop: stopAll,
      async restartTemporal() {
        await currentTemporal!.stop();
        // Same address and database file: clients reconnect and every workflow is still there.
        const port = Number(temporal.address.split(':').pop());
        currentTemporal = await startTemporalServer({ ...temporalOptions, port });
        lock.addChild('temporal', currentTemporal.process.pid, temporalCli);
        log(`temporal server restarted at ${currentTemporal.address}`);
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
