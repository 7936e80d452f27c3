// What the bench reads from the chain: registrations mined in a block range, and when blocks arrive.
import { createPublicClient, getAddress, http, parseEventLogs, type Address, type PublicClient } from 'viem';
import { dstackAppAbi } from '../../src/chain/dstack-app-abi.ts';
import { deployApps } from '../../src/dev/deploy-apps.ts';
import type { Stack } from '../../src/dev/stack.ts';

export function chainClient(rpcUrl: string): PublicClient {
  return createPublicClient({ transport: http(rpcUrl) });
}

export interface Registrations {
  /** ComposeHashAdded events mined in the range on the given apps. */
  mined: number;
  /** Distinct (app, compose hash) pairs among them. */
  distinct: number;
  /** `app/hash` (lowercase, hash without 0x) → events. */
  byPair: Map<string, number>;
}

export const pairKey = (appId: string, hash: string) => `${appId.toLowerCase()}/${hash.replace(/^0x/i, '').toLowerCase()}`;

/** Every ComposeHashAdded of these app contracts in [fromBlock, toBlock]. */
export async function registrationsMined(rpcUrl: string, apps: string[], fromBlock: bigint, toBlock: bigint): Promise<Registrations> {
  const chain = chainClient(rpcUrl);
  const byPair = new Map<string, number>();
  // Chunks keep the filter's address list short.
  for (let i = 0; i < apps.length; i += 50) {
    const logs = await chain.getLogs({ address: apps.slice(i, i + 50).map((a) => getAddress(a)), fromBlock, toBlock });
    for (const e of parseEventLogs({ abi: dstackAppAbi, logs, eventName: 'ComposeHashAdded' })) {
      const key = pairKey(e.address, e.args.composeHash);
      byPair.set(key, (byPair.get(key) ?? 0) + 1);
    }
  }
  let mined = 0;
  for (const n of byPair.values()) mined += n;
  return { mined, distinct: byPair.size, byPair };
}

/** Deploys app contracts owned by the stack's signer, with the stack's own deploy code. */
export async function deploySignerApps(stack: Stack, names: string[]): Promise<Address[]> {
  const apps = await deployApps({
    rpcUrl: stack.info.rpcUrl,
    chainId: stack.info.chainId,
    deployer: stack.accounts.signer,
    owners: { signer: stack.accounts.signer.address, other: stack.accounts.other.address },
    apps: names.map((name) => ({ name, owner: 'signer' as const })),
    kms: getAddress(stack.info.kmsAddress as string),
  });
  return apps.map((a) => a.appId);
}

/**
 * Notes when each block is first seen (polling every 20 ms), so a floor can use the real wait
 * for the next block rather than an average.
 */
export class BlockWatcher {
  readonly seenAt = new Map<bigint, number>();
  #timer: NodeJS.Timeout | undefined;
  #chain: PublicClient;
  #busy = false;
  /** The head at the first poll: already mined before the watch began, so its arrival is unknown. */
  #first: bigint | undefined;

  constructor(rpcUrl: string) {
    this.#chain = chainClient(rpcUrl);
  }

  start(): void {
    this.#timer = setInterval(() => void this.#poll(), 20);
  }

  async #poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const n = await this.#chain.getBlockNumber({ cacheTime: 0 });
      if (this.#first === undefined) this.#first = n;
      else if (n > this.#first && !this.seenAt.has(n)) this.seenAt.set(n, performance.now());
    } catch {
      // A missed poll only blurs one arrival time.
    } finally {
      this.#busy = false;
    }
  }

  /** The first block seen after `t` (performance.now time), and when. */
  firstBlockAfter(t: number): { block: bigint; at: number } | undefined {
    let best: { block: bigint; at: number } | undefined;
    for (const [block, at] of this.seenAt) if (at > t && (!best || at < best.at)) best = { block, at };
    return best;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
