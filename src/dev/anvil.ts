import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { freePort } from './free-port.ts';
import { startService, type ServiceProcess } from './service-process.ts';

const require = createRequire(import.meta.url);

/** Anvil's well-known development mnemonic: its keys are public and hold only local test ether. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk';

/** The platform binary directly: the npm wrapper script adds a Node process between us and anvil. */
export function findAnvilBinary(): string {
  const platformPackage = `@foundry-rs/anvil-${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${platformPackage}/package.json`);
  } catch {
    throw new Error(`${platformPackage} is not installed; run \`npm ci\` (anvil comes from @foundry-rs/anvil's optional dependencies)`);
  }
  const bin = join(dirname(pkgJson), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  if (!existsSync(bin)) throw new Error(`anvil binary missing at ${bin}; reinstall @foundry-rs/anvil`);
  return bin;
}

export interface Anvil {
  rpcUrl: string;
  chainId: number;
  process: ServiceProcess;
  stop(): Promise<void>;
}

export interface StartAnvilOptions {
  logFile: string;
  chainId?: number;
  port?: number;
  /** Seconds between blocks; omitted means a block per transaction (automine). */
  blockTime?: number;
  /** Anvil state file: keeps the chain across restarts of the stack. */
  stateFile?: string;
}

let rpcId = 0;

/**
 * A raw JSON-RPC call, for the node's own methods (anvil_mine, evm_setAutomine, …) that
 * viem has no typed action for, and for readiness probes before any client exists.
 */
export async function anvilRpc<T = unknown>(url: string, method: string, params: unknown[] = [], timeoutMs?: number): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

export async function startAnvil(opts: StartAnvilOptions): Promise<Anvil> {
  const port = opts.port ?? (await freePort());
  const chainId = opts.chainId ?? 31337;
  const rpcUrl = `http://127.0.0.1:${port}`;
  const args = [
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--chain-id',
    String(chainId),
    '--mnemonic',
    ANVIL_MNEMONIC,
    '--accounts',
    '10',
    ...(opts.blockTime ? ['--block-time', String(opts.blockTime)] : []),
    ...(opts.stateFile ? ['--state', opts.stateFile] : []),
  ];
  const proc = await startService({
    name: 'anvil',
    command: findAnvilBinary(),
    args,
    logFile: opts.logFile,
    readyTimeoutMs: 20_000,
    isReady: async () => Number(await anvilRpc<string>(rpcUrl, 'eth_chainId', [], 1000)) === chainId,
  });
  return { rpcUrl, chainId, process: proc, stop: () => proc.stop(5000) };
}
