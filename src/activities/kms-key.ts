import type { Hex, PublicClient } from 'viem';
import { readKmsSigningKey } from '../chain/kms-key.ts';
import type { ChainActivityDeps } from './chain-activities.ts';
import { chainCall } from './chain-activities.ts';

/**
 * Reads a KMS contract's signing key through the worker's chain clients. A chain the worker
 * has no RPC for yields undefined (the API's key is then used); an RPC failure is retried
 * like any chain read.
 */
export function kmsKeyReader(
  deps: Pick<ChainActivityDeps, 'chains'>,
  clientFor: (chainId: number) => PublicClient,
): (chainId: number, kmsContract: string) => Promise<string | undefined> {
  return async (chainId, kmsContract) => {
    if (!deps.chains.has(chainId)) return undefined;
    return chainCall(() => readKmsSigningKey(clientFor(chainId), kmsContract as Hex));
  };
}
