// Chain faults while registrations are in flight: one of the signer's pooled transactions
// dropped from the node (`anvil_dropTransaction`), and a reorg that takes freshly mined
// registrations back out (`anvil_reorg` with no transactions in the new branch).
import { getAddress, parseEventLogs } from 'viem';
import { dstackAppAbi } from '../../src/chain/dstack-app-abi.ts';
import { anvilRpc } from '../../src/dev/anvil.ts';
import { chainClient } from '../bench/chain.ts';

export interface DropFault {
  /** The transaction forgotten by the node, or undefined if none was caught in the pool. */
  hash?: string;
  atMs?: number;
}

export interface ReorgFault {
  depth: number;
  /** Reorgs done: more than one only when a block raced the first and it removed nothing. */
  reorgs: number;
  /** Registrations (ComposeHashAdded) in the blocks that were replaced. */
  registrationsRemoved?: number;
  atMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watches the pool for a transaction of `from` and drops the first one seen. */
export async function dropOneTransaction(rpcUrl: string, from: string, until: () => boolean, t0: number): Promise<DropFault> {
  const sender = from.toLowerCase();
  while (!until()) {
    try {
      const pool = await anvilRpc<{ pending: Record<string, Record<string, { hash: string }>> }>(rpcUrl, 'txpool_content');
      const ours = Object.entries(pool.pending ?? {}).find(([addr]) => addr.toLowerCase() === sender)?.[1];
      const tx = ours ? Object.values(ours)[0] : undefined;
      if (tx) {
        await anvilRpc(rpcUrl, 'anvil_dropTransaction', [tx.hash]);
        // Mined in between: nothing was dropped, so look for the next one.
        if ((await anvilRpc(rpcUrl, 'eth_getTransactionByHash', [tx.hash])) === null) {
          return { hash: tx.hash, atMs: performance.now() - t0 };
        }
      }
    } catch {
      // A hiccup of the node: look again.
    }
    await sleep(25);
  }
  return {};
}

/**
 * Waits until a registration of one of `apps` sits within the newest `depth` blocks (after
 * `after`, when given, e.g. once the drop happened), then reorganises those blocks away.
 */
export async function reorgRegistrations(
  rpcUrl: string,
  apps: string[],
  depth: number,
  until: () => boolean,
  t0: number,
  after?: Promise<unknown>,
): Promise<ReorgFault> {
  await after;
  const chain = chainClient(rpcUrl);
  const addresses = apps.map((a) => getAddress(a));
  let reorgs = 0;
  while (!until()) {
    try {
      const head = await chain.getBlockNumber({ cacheTime: 0 });
      const fromBlock = head - BigInt(depth) + 1n;
      if (fromBlock > 0n) {
        const logs = await chain.getLogs({ address: addresses, fromBlock, toBlock: head });
        const added = parseEventLogs({ abi: dstackAppAbi, logs, eventName: 'ComposeHashAdded' });
        if (added.length > 0) {
          await anvilRpc(rpcUrl, 'anvil_reorg', [depth, []]);
          reorgs++;
          // A block mined between the look and the reorg can leave them below the replaced range.
          let removed = 0;
          for (const e of added) if ((await anvilRpc(rpcUrl, 'eth_getTransactionReceipt', [e.transactionHash])) === null) removed++;
          if (removed > 0) return { depth, reorgs, registrationsRemoved: removed, atMs: performance.now() - t0 };
        }
      }
    } catch {
      // A hiccup of the node: look again.
    }
    await sleep(100);
  }
  return { depth, reorgs };
}
