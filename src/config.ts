// Configuration from the environment, validated once with messages that name the variable.
import { z } from 'zod';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { parseChainRpcConfig } from './chain/clients.ts';
import { DEFAULT_API_VERSION } from './phala/api-client.ts';
import { SUPPORTED_API_VERSIONS, type ApiVersion } from './phala/api-schemas.ts';
import { ConfigError } from './config-error.ts';
import { withFileSecrets, secretFromEnv } from './file-secrets.ts';
import { normaliseKmsPublicKey } from './phala/kms-signature.ts';
import type { KmsTrustSettings } from './activities/kms-trust.ts';

const nonEmpty = (name: string) =>
  z
    .string({ error: `${name} is required` })
    .trim()
    .min(1, `${name} is required`);

const TemporalSchema = z.object({
  TEMPORAL_TASK_QUEUE: z.string().trim().min(1).default('cvm-envs'),
  PAYLOAD_ENCRYPTION_KEYS: nonEmpty('PAYLOAD_ENCRYPTION_KEYS'),
  PAYLOAD_ACCEPT_UNENCRYPTED: z
    .enum(['true', 'false', ''], { error: 'PAYLOAD_ACCEPT_UNENCRYPTED must be true or false' })
    .optional()
    .transform((v) => v === 'true'),
});

export type TemporalConfig = {
  address: string;
  namespace: string;
  taskQueue: string;
  /** For NativeConnection (worker) and Connection (client) alike: address, TLS/mTLS, API key, gRPC metadata. */
  connection: NativeConnectionOptions & { address: string };
  payloadKeys: string;
  /** Development only: run payloads that were not encrypted instead of refusing them. */
  acceptUnencrypted: boolean;
};

function fail(error: z.ZodError, what: string): never {
  const lines = error.issues.map((i) => `- ${i.path.join('.') || '(environment)'}: ${i.message}`);
  throw new ConfigError(`invalid ${what} configuration:\n${lines.join('\n')}`);
}

export { ConfigError };

/**
 * The Temporal connection through @temporalio/envconfig: TEMPORAL_PROFILE and
 * TEMPORAL_CONFIG_FILE (a TOML profile file), TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY(_FILE), TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH/_DATA,
 * TEMPORAL_TLS_CLIENT_KEY_PATH/_DATA, TEMPORAL_TLS_SERVER_CA_CERT_PATH/_DATA,
 * TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*.
 */
export function loadTemporalConfig(rawEnv: NodeJS.ProcessEnv = process.env): TemporalConfig {
  const env = withFileSecrets(rawEnv, ['PAYLOAD_ENCRYPTION_KEYS', 'TEMPORAL_API_KEY']);
  const r = TemporalSchema.safeParse(env);
  if (!r.success) fail(r.error, 'Temporal');
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
    // Without a config file named, only the environment counts: a developer's
    // ~/.config/temporalio/temporal.toml must not redirect a service.
    loaded = loadClientConnectConfig({ overrideEnvVars: vars, ...(vars.TEMPORAL_CONFIG_FILE ? {} : { disableFile: true }) });
  } catch (err) {
    throw new ConfigError(
      `invalid Temporal connection configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE or TEMPORAL_TLS_*): ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const address = loaded.connectionOptions.address || 'localhost:7233';
  const apiKey = loaded.connectionOptions.apiKey;
  return {
    address,
    namespace: loaded.namespace || 'default',
    taskQueue: r.data.TEMPORAL_TASK_QUEUE,
    // An API key implies TLS (Temporal Cloud) unless TLS is configured explicitly.
    connection: { ...loaded.connectionOptions, address, ...(apiKey && loaded.connectionOptions.tls === undefined ? { tls: true } : {}) },
    payloadKeys: r.data.PAYLOAD_ENCRYPTION_KEYS,
    acceptUnencrypted: r.data.PAYLOAD_ACCEPT_UNENCRYPTED,
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

export function loadPhalaConfig(rawEnv: NodeJS.ProcessEnv = process.env): PhalaConfig {
  const env = withFileSecrets(rawEnv, ['PHALA_API_KEY']);
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
  for (const part of raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
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
  const raw = secretFromEnv(env, 'SIGNER_PRIVATE_KEY');
  if (!raw) return undefined;
  const key = raw.trim();
  const hex = key.startsWith('0x') ? key : `0x${key}`;
  // The message must not echo the value: it is a private key, however malformed.
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) throw new ConfigError('the signer key must be 32 bytes of hex (64 digits, 0x optional)');
  return hex as `0x${string}`;
}

/** How the worker watches an accepted change being applied. */
export interface ApplyWatchSettings {
  /**
   * How long an accepted change's operation may be missing from the CVM's operations while the
   * CVM is idle before the update waits for an operator (whether it was applied is unknown).
   */
  unlistedOperationGraceMs: number;
}

export const DEFAULT_APPLY_UNLISTED_GRACE_SECONDS = 120;

/** The number in `env[name]` (undefined when unset or blank); one that `ok` refuses is a ConfigError saying `problem`. */
function envNumber(env: NodeJS.ProcessEnv, name: string, ok: (n: number) => boolean, problem: string): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!ok(n)) throw new ConfigError(problem);
  return n;
}

export function loadApplyWatchConfig(env: NodeJS.ProcessEnv = process.env): ApplyWatchSettings {
  const seconds =
    envNumber(
      env,
      'APPLY_UNLISTED_GRACE_SECONDS',
      (n) => Number.isFinite(n) && n > 0 && n <= 86_400,
      'APPLY_UNLISTED_GRACE_SECONDS must be a number of seconds above 0 and at most 86400',
    ) ?? DEFAULT_APPLY_UNLISTED_GRACE_SECONDS;
  return { unlistedOperationGraceMs: seconds * 1000 };
}

/** The worker's capacity: how many workflows it keeps in memory and how many tasks it runs at once. */
export interface WorkerTuning {
  maxCachedWorkflows?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentLocalActivityExecutions?: number;
}

const TUNING_VARIABLES = {
  WORKER_MAX_CACHED_WORKFLOWS: { option: 'maxCachedWorkflows', min: 0 },
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: { option: 'maxConcurrentWorkflowTaskExecutions', min: 2 },
  WORKER_MAX_CONCURRENT_ACTIVITIES: { option: 'maxConcurrentActivityTaskExecutions', min: 1 },
  WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: { option: 'maxConcurrentLocalActivityExecutions', min: 1 },
} as const;

/**
 * WORKER_MAX_CACHED_WORKFLOWS, WORKER_MAX_CONCURRENT_WORKFLOW_TASKS, WORKER_MAX_CONCURRENT_ACTIVITIES,
 * WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: unset leaves the SDK's defaults. A smaller workflow
 * cache bounds the worker's memory; a workflow pushed out of it is replayed from its history
 * when its next task comes, which costs the server a history read. No defaults of our own: on
 * the bench's fleet of 200 updates, 200 workflow task slots (local reads hold theirs while they
 * run) against the SDK's 40 measured 34.8 s against 45.3 s in one pair of runs and 29.5 s
 * against 29.0 s in another, while the worker's peak grew by about 90 MB.
 */
export function loadWorkerTuning(env: NodeJS.ProcessEnv = process.env): WorkerTuning {
  const tuning: WorkerTuning = {};
  for (const [name, { option, min }] of Object.entries(TUNING_VARIABLES)) {
    const n = envNumber(
      env,
      name,
      (v) => Number.isInteger(v) && v >= min && v <= 100_000,
      `${name} must be a whole number from ${min} to 100000`,
    );
    if (n !== undefined) tuning[option] = n;
  }
  return tuning;
}

export const DEFAULT_SEALED_ENV_CACHE_MB = 32;

/**
 * SEALED_ENV_CACHE_MB: how much env ciphertext a worker keeps for its own submits (0 keeps
 * none: every submit reads it back from the run's history).
 */
export function loadSealedEnvCacheBytes(env: NodeJS.ProcessEnv = process.env): number {
  const mb =
    envNumber(
      env,
      'SEALED_ENV_CACHE_MB',
      (n) => Number.isFinite(n) && n >= 0 && n <= 4096,
      'SEALED_ENV_CACHE_MB must be a number of MiB from 0 to 4096',
    ) ?? DEFAULT_SEALED_ENV_CACHE_MB;
  return Math.floor(mb * 1024 * 1024);
}

/**
 * KMS_PUBLIC_KEYS pins the key of an on-chain KMS, for workers that cannot read its contract:
 * comma-separated `<chainId>=<key>` or `<0x KMS contract>=<key>`, the key a secp256k1 public key
 * in hex (33 bytes compressed or 65 uncompressed). KMS_TRUST_API_KEY=true trusts the API's KMS
 * key when neither the contract nor a pin can vouch for it.
 */
export function loadKmsTrustConfig(env: NodeJS.ProcessEnv = process.env): KmsTrustSettings {
  const byChain = new Map<number, string>();
  const byContract = new Map<string, string>();
  const entries = (env.KMS_PUBLIC_KEYS ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  entries.forEach((entry, i) => {
    const where = `KMS_PUBLIC_KEYS entry ${i + 1} ("${entry.length > 60 ? `${entry.slice(0, 60)}…` : entry}")`;
    const eq = entry.indexOf('=');
    const name = entry.slice(0, Math.max(eq, 0)).trim();
    const chainId = /^\d+$/.test(name) ? Number(name) : undefined;
    const contract = /^0x[0-9a-fA-F]{40}$/.test(name) ? name.toLowerCase() : undefined;
    if (eq <= 0 || (!contract && !(chainId !== undefined && Number.isSafeInteger(chainId) && chainId > 0))) {
      throw new ConfigError(`${where} must look like <chainId>=<key> or <0x KMS contract address>=<key>`);
    }
    let key: string;
    try {
      key = `0x${normaliseKmsPublicKey(entry.slice(eq + 1).trim())}`;
    } catch (err) {
      throw new ConfigError(`${where}: the key must be a secp256k1 public key in hex (33 or 65 bytes): ${(err as Error).message}`);
    }
    const earlier = contract ? byContract.get(contract) : byChain.get(chainId!);
    if (earlier !== undefined && earlier !== key)
      throw new ConfigError(`${where}: ${contract ?? chainId} is pinned twice, to different keys`);
    if (contract) byContract.set(contract, key);
    else byChain.set(chainId!, key);
  });
  const trust = (env.KMS_TRUST_API_KEY ?? '').trim().toLowerCase();
  if (!['', 'true', 'false', '1', '0'].includes(trust)) {
    throw new ConfigError('KMS_TRUST_API_KEY must be true or false');
  }
  return { kmsKeyPins: { byChain, byContract }, trustApiKmsKey: trust === 'true' || trust === '1' };
}
