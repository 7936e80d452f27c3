import type { Hex, PublicClient } from 'viem';
import { readKmsSigningKey } from '../chain/kms-key.ts';
import type { ChainActivityDeps } from './chain-activities.ts';
import { chainCall } from './chain-activities.ts';
import type { OnChainKmsKey } from './kms-trust.ts';

/**
 * Reads a KMS contract's signing key through the worker's chain clients. A chain the worker
 * has no RPC for, or a contract holding no key, says why instead (a pin or an explicit opt-in
 * decides then); an RPC failure is retried like any chain read, never taken as "no key".
 */
export function kmsKeyReader(
  deps: Pick<ChainActivityDeps, 'chains'>,
  clientFor: (chainId: number) => PublicClient,
): (chainId: number, kmsContract: string) => Promise<OnChainKmsKey> {
  return async (chainId, kmsContract) => {
    if (!deps.chains.has(chainId)) return { missing: `the worker has no RPC for chain ${chainId}` };
    const key = await chainCall(() => readKmsSigningKey(clientFor(chainId), kmsContract as Hex));
    return key === undefined ? { missing: 'the KMS contract publishes no k256 key' } : { key };
  };
}
