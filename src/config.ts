// Configuration from the environment, validated once with messages that name the variable.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseChainRpcConfig } from './chain/clients.ts';
import { DEFAULT_API_VERSION } from './phala/api-client.ts';
import { SUPPORTED_API_VERSIONS, type ApiVersion } from './phala/api-schemas.ts';

const nonEmpty = (name: string) => z.string({ error: `${name} is required` }).trim().min(1, `${name} is required`);

const TemporalSchema = z.object({
  TEMPORAL_ADDRESS: z.string().trim().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().trim().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().trim().min(1).default('cvm-envs'),
  TEMPORAL_API_KEY: z.string().optional(),
  TEMPORAL_TLS: z.enum(['true', 'false']).optional(),
  PAYLOAD_ENCRYPTION_KEYS: nonEmpty('PAYLOAD_ENCRYPTION_KEYS'),
});

export type TemporalConfig = {
  address: string;
  namespace: string;
  taskQueue: string;
  apiKey?: string;
  tls: boolean;
  payloadKeys: string;
};

function fail(error: z.ZodError, what: string): never {
  const lines = error.issues.map((i) => `- ${i.path.join('.') || '(environment)'}: ${i.message}`);
  throw new ConfigError(`invalid ${what} configuration:\n${lines.join('\n')}`);
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadTemporalConfig(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  const r = TemporalSchema.safeParse(env);
  if (!r.success) fail(r.error, 'Temporal');
  const c = r.data;
  return {
    address: c.TEMPORAL_ADDRESS,
    namespace: c.TEMPORAL_NAMESPACE,
    taskQueue: c.TEMPORAL_TASK_QUEUE,
    apiKey: c.TEMPORAL_API_KEY || undefined,
    tls: c.TEMPORAL_TLS === 'true' || Boolean(c.TEMPORAL_API_KEY),
    payloadKeys: c.PAYLOAD_ENCRYPTION_KEYS,
  };
}

const PhalaSchema = z
  .object({
    PHALA_API_URL: z.url({ error: 'PHALA_API_URL must be a URL including /api/v1' }).default('https://cloud-api.phala.com/api/v1'),
    PHALA_API_KEY: z.string().optional(),
    PHALA_BEARER_TOKEN: z.string().optional(),
    PHALA_WORKSPACE: z.string().optional(),
    PHALA_API_VERSION: z.enum(SUPPORTED_API_VERSIONS).default(DEFAULT_API_VERSION),
    PHALA_API_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  })
  .refine((c) => Boolean(c.PHALA_API_KEY || c.PHALA_BEARER_TOKEN), {
    path: ['PHALA_API_KEY'],
    message: 'PHALA_API_KEY is required (or PHALA_BEARER_TOKEN)',
  });

export interface PhalaConfig {
  baseUrl: string;
  apiKey?: string | undefined;
  bearerToken?: string | undefined;
  workspace?: string | undefined;
  apiVersion: ApiVersion;
  timeoutMs: number;
}

export function loadPhalaConfig(env: NodeJS.ProcessEnv = process.env): PhalaConfig {
  const r = PhalaSchema.safeParse(env);
  if (!r.success) fail(r.error, 'Phala Cloud API');
  return {
    baseUrl: r.data.PHALA_API_URL,
    apiKey: r.data.PHALA_API_KEY || undefined,
    bearerToken: r.data.PHALA_BEARER_TOKEN || undefined,
    workspace: r.data.PHALA_WORKSPACE || undefined,
    apiVersion: r.data.PHALA_API_VERSION,
    timeoutMs: r.data.PHALA_API_TIMEOUT_MS,
  };
}

/**
 * Per-chain depth, counted as viem does (the transaction's own block is 1): Ethereum
 * reorgs deeper and slower than Base.
 */
const DEFAULT_CONFIRMATIONS: Record<number, number> = { 1: 7, 8453: 4, 31337: 2 };

export interface ChainSettings {
  chainId: number;
  rpcUrl: string;
  confirmations: number;
  stallMs: number;
  /** The transaction manager never signs above this maxFeePerGas (wei); at the cap it waits. */
  maxFeePerGasWei?: string;
}

function parsePairs(name: string, raw: string | undefined): Map<number, string> {
  const out = new Map<number, string>();
  if (!raw) return out;
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const id = Number(part.slice(0, eq));
    if (eq <= 0 || !Number.isInteger(id) || id <= 0) throw new ConfigError(`${name}: "${part.slice(0, 40)}" is not chainId=value`);
    out.set(id, part.slice(eq + 1));
  }
  return out;
}

export function loadChainConfig(env: NodeJS.ProcessEnv = process.env): Map<number, ChainSettings> {
  let rpcs: ReadonlyMap<number, string>;
  try {
    rpcs = parseChainRpcConfig(env);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const confirmations = parsePairs('CHAIN_CONFIRMATIONS', env.CHAIN_CONFIRMATIONS);
  const stallSeconds = env.CHAIN_STALL_SECONDS ? Number(env.CHAIN_STALL_SECONDS) : 60;
  if (!Number.isFinite(stallSeconds) || stallSeconds <= 0) throw new ConfigError('CHAIN_STALL_SECONDS must be a positive number');
  const feeCaps = parsePairs('CHAIN_MAX_FEE_GWEI', env.CHAIN_MAX_FEE_GWEI);
  for (const id of feeCaps.keys()) {
    if (!rpcs.has(id)) throw new ConfigError(`CHAIN_MAX_FEE_GWEI names chain ${id}, which has no RPC in CHAIN_RPC_URLS`);
  }
  const out = new Map<number, ChainSettings>();
  for (const [chainId, rpcUrl] of rpcs) {
    const c = Number(confirmations.get(chainId) ?? DEFAULT_CONFIRMATIONS[chainId] ?? 3);
    if (!Number.isInteger(c) || c < 1) throw new ConfigError(`CHAIN_CONFIRMATIONS for chain ${chainId} must be a positive integer`);
    const cap = feeCaps.get(chainId);
    out.set(chainId, {
      chainId,
      rpcUrl,
      confirmations: c,
      stallMs: stallSeconds * 1000,
      ...(cap !== undefined ? { maxFeePerGasWei: gweiToWei(cap, chainId) } : {}),
    });
  }
  return out;
}

/** Decimal gwei (up to 9 decimals) to wei, exactly: no floating point near money. */
function gweiToWei(raw: string, chainId: number): string {
  const m = /^\s*(\d+)(?:\.(\d{1,9}))?\s*$/.exec(raw);
  const wei = m ? BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0') : 0n;
  if (wei <= 0n) throw new ConfigError(`CHAIN_MAX_FEE_GWEI for chain ${chainId} must be a positive number of gwei (e.g. 50 or 0.5)`);
  return wei.toString();
}

/** The signer key from SIGNER_PRIVATE_KEY or SIGNER_PRIVATE_KEY_FILE; never from workflow input. */
export function loadSignerKey(env: NodeJS.ProcessEnv = process.env): `0x${string}` | undefined {
  let raw = env.SIGNER_PRIVATE_KEY;
  if (!raw && env.SIGNER_PRIVATE_KEY_FILE) {
    try {
      raw = readFileSync(env.SIGNER_PRIVATE_KEY_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`SIGNER_PRIVATE_KEY_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (!raw) return undefined;
  const key = raw.trim();
  const hex = key.startsWith('0x') ? key : `0x${key}`;
  // The message must not echo the value: it is a private key, however malformed.
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) throw new ConfigError('the signer key must be 32 bytes of hex (64 digits, 0x optional)');
  return hex as `0x${string}`;
}
