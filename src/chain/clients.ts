import { createPublicClient, defineChain, http, type Chain, type PublicClient } from 'viem';
import { base, baseSepolia, foundry, mainnet, sepolia } from 'viem/chains';
import { z } from 'zod';
import { ChainError, redactUrls } from './errors.ts';

// Known chains keep viem's formatters (Base's deposit transactions, for instance);
// any other id gets a plain EVM definition so a new chain is a config change.
const KNOWN_CHAINS: Record<number, Chain> = {
  [mainnet.id]: mainnet,
  [base.id]: base,
  [sepolia.id]: sepolia,
  [baseSepolia.id]: baseSepolia,
  [foundry.id]: foundry,
};

/** A viem chain object for any id, with the RPC we were configured with (not a public default). */
export function chainFor(chainId: number, rpcUrl: string): Chain {
  const rpcUrls = { default: { http: [rpcUrl] } };
  const known = KNOWN_CHAINS[chainId];
  if (known) return { ...known, rpcUrls };
  return defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls,
  });
}

export interface CreateChainClientsOptions {
  rpcUrl: string;
  chainId: number;
  /** Per request; default 15 s. */
  timeoutMs?: number;
  /**
   * viem's own retries of one request; default 1. Temporal retries the whole activity
   * with backoff, so a long inner retry loop only hides an outage from the UI.
   */
  retryCount?: number;
  pollingIntervalMs?: number;
}

export interface ChainClients {
  publicClient: PublicClient;
  chain: Chain;
}

export function createChainClients(options: CreateChainClientsOptions): ChainClients {
  const { rpcUrl, chainId } = parseSingle(options.chainId, options.rpcUrl, 'createChainClients');
  const chain = chainFor(chainId, rpcUrl);
  const publicClient = createPublicClient({
    chain,
    transport: http(rpcUrl, { timeout: options.timeoutMs ?? 15_000, retryCount: options.retryCount ?? 1 }),
    pollingInterval: options.pollingIntervalMs ?? 1_000,
  }) as PublicClient;
  return { publicClient, chain };
}

// ---------------------------------------------------------------------------------------
// Configuration from the environment
// ---------------------------------------------------------------------------------------

/** RPC endpoint per chain id. A Map because ids are numbers and order carries no meaning. */
export type ChainRpcConfig = ReadonlyMap<number, string>;

const chainIdSchema = z.coerce
  .number({ error: 'chain id must be a number' })
  .int({ error: 'chain id must be a positive integer' })
  .positive({ error: 'chain id must be a positive integer' });

// Only http(s): the clients use the HTTP transport, and a ws:// URL would fail far from here.
const rpcUrlSchema = z
  .string()
  .trim()
  .min(1, { error: 'RPC URL is empty' })
  .refine(
    (s) => {
      try {
        const u = new URL(s);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
      } catch {
        return false;
      }
    },
    { error: 'RPC URL must be an http:// or https:// URL' },
  );

function parseSingle(chainIdRaw: unknown, rpcUrlRaw: unknown, where: string): { chainId: number; rpcUrl: string } {
  const id = chainIdSchema.safeParse(chainIdRaw);
  if (!id.success) throw new ChainError('CONFIG', `${where}: ${firstIssue(id.error)}`);
  const url = rpcUrlSchema.safeParse(rpcUrlRaw);
  if (!url.success) {
    throw new ChainError('CONFIG', `${where}: ${firstIssue(url.error)} for chain ${id.data}`);
  }
  return { chainId: id.data, rpcUrl: url.data };
}

function firstIssue(error: z.ZodError): string {
  return error.issues[0]?.message ?? 'invalid value';
}

/**
 * Reads the RPC endpoints from the environment:
 *   CHAIN_RPC_URLS="31337=http://127.0.0.1:8545,8453=https://base.example/v2/KEY"
 * and/or the single form CHAIN_RPC_URL + CHAIN_ID. Entries are separated by commas or
 * whitespace; only the first `=` of an entry splits id from URL, so URLs may carry
 * query strings. Error messages never repeat a URL (they often hold API keys).
 */
export function parseChainRpcConfig(env: Record<string, string | undefined>): ChainRpcConfig {
  const out = new Map<number, string>();
  const add = (chainId: number, rpcUrl: string, source: string) => {
    const existing = out.get(chainId);
    if (existing !== undefined && existing !== rpcUrl) {
      throw new ChainError('CONFIG', `${source}: chain ${chainId} is configured twice with different RPC URLs`);
    }
    out.set(chainId, rpcUrl);
  };

  const list = env.CHAIN_RPC_URLS?.trim();
  if (list) {
    const entries = list.split(/[\s,]+/).filter((e) => e !== '');
    entries.forEach((entry, i) => {
      const eq = entry.indexOf('=');
      if (eq <= 0) {
        throw new ChainError('CONFIG', `CHAIN_RPC_URLS entry ${i + 1} must look like <chainId>=<url>`);
      }
      const { chainId, rpcUrl } = parseSingle(entry.slice(0, eq), entry.slice(eq + 1), `CHAIN_RPC_URLS entry ${i + 1}`);
      add(chainId, rpcUrl, 'CHAIN_RPC_URLS');
    });
  }

  const single = env.CHAIN_RPC_URL?.trim();
  const singleId = env.CHAIN_ID?.trim();
  if (single) {
    if (!singleId) throw new ChainError('CONFIG', 'CHAIN_RPC_URL is set but CHAIN_ID is not: set both, or use CHAIN_RPC_URLS');
    const { chainId, rpcUrl } = parseSingle(singleId, single, 'CHAIN_RPC_URL/CHAIN_ID');
    add(chainId, rpcUrl, 'CHAIN_RPC_URL/CHAIN_ID');
  } else if (singleId) {
    throw new ChainError('CONFIG', 'CHAIN_ID is set but CHAIN_RPC_URL is not: set both, or use CHAIN_RPC_URLS');
  }
  return out;
}

/** The endpoint for one chain, or a CONFIG error that says how to add it. */
export function rpcUrlFor(config: ChainRpcConfig, chainId: number): string {
  const url = config.get(chainId);
  if (url === undefined) {
    const known = [...config.keys()].sort((a, b) => a - b);
    throw new ChainError(
      'CONFIG',
      `no RPC URL configured for chain ${chainId} (configured: ${known.length ? known.join(', ') : 'none'}); add "${chainId}=<url>" to CHAIN_RPC_URLS`,
    );
  }
  return url;
}

/** For logs and the UI: the endpoint without anything that could be a key. */
export function describeRpcUrl(rpcUrl: string): string {
  return redactUrls(rpcUrl);
}
