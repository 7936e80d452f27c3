import { type Address, type Client } from 'viem';
import { readContract } from 'viem/actions';
import { withChainErrors } from './errors.ts';
import { parseAddress } from './inputs.ts';

// dstack's KmsAuth and our DstackKms both keep `KmsInfo public kmsInfo` (k256Pubkey, caPubkey,
// quote, eventlog): the public getter returns the four fields as a tuple.
const kmsInfoAbi = [
  {
    type: 'function',
    name: 'kmsInfo',
    stateMutability: 'view',
    inputs: [],
    outputs: [
      { name: 'k256Pubkey', type: 'bytes' },
      { name: 'caPubkey', type: 'bytes' },
      { name: 'quote', type: 'bytes' },
      { name: 'eventlog', type: 'bytes' },
    ],
  },
] as const;

/**
 * The KMS's signing key as its contract publishes it (`kmsInfo().k256Pubkey`), or undefined
 * when the contract holds none. This, not the API that also serves the env key, is what may
 * vouch for an env encryption key.
 */
export async function readKmsSigningKey(client: Client, kms: Address): Promise<string | undefined> {
  const address = parseAddress(kms, 'kms');
  const [k256Pubkey] = await withChainErrors(`reading kmsInfo() of the KMS contract ${address}`, () =>
    readContract(client, { address, abi: kmsInfoAbi, functionName: 'kmsInfo' }),
  );
  return k256Pubkey === '0x' ? undefined : k256Pubkey;
}
