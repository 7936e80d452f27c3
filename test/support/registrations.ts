import { createPublicClient, http, parseEventLogs, type Hex } from 'viem';
import { dstackAppAbi } from '../../src/chain/dstack-app-abi.ts';

/**
 * Transactions whose ComposeHashAdded for this hash the app emitted on the canonical chain:
 * the exactly-once property every registration test ends on.
 */
export async function registrationsOf(rpcUrl: string, appId: string, composeHash: string): Promise<Hex[]> {
  const client = createPublicClient({ transport: http(rpcUrl) });
  const logs = await client.getLogs({ address: appId as Hex, fromBlock: 0n, toBlock: 'latest' });
  return parseEventLogs({ abi: dstackAppAbi, logs, eventName: 'ComposeHashAdded' })
    .filter((l) => l.args.composeHash === `0x${composeHash.replace(/^0x/, '')}`)
    .map((l) => l.transactionHash);
}
