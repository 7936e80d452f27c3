/**
 * The local stack's on-chain KMS: a DstackKms on anvil whose `kmsInfo.k256Pubkey` is the key the
 * simulated KMS signs env-encryption keys with. Its deployment and that key are kept in the data
 * dir (mode 0600, dev keys only), and reused while the chain still has the contract.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createPublicClient, createWalletClient, http, toHex, type Address, type Hex, type LocalAccount } from 'viem';
import { foundry } from 'viem/chains';
import { kmsPublicKeyFromPrivate } from '../phala/kms-signature.ts';
import { deployDstackKms } from './deploy-dstack.ts';

export interface LocalKms {
  /** The DstackKms proxy: what CVMs report as `dstack_kms_address`. */
  address: Address;
  appImplementation: Address;
  /** The simulated KMS signs with this (hex, no 0x); its public half is on chain. */
  k256PrivateKey: string;
  /** The OS image the simulated node boots, allowed on the KMS. */
  osImageHash: Hex;
}

export async function ensureLocalKms(opts: {
  dataDir: string;
  rpcUrl: string;
  chainId: number;
  deployer: LocalAccount;
}): Promise<LocalKms> {
  const file = join(opts.dataDir, `kms-${opts.chainId}.json`);
  const chain = { ...foundry, id: opts.chainId };
  const publicClient = createPublicClient({ chain, transport: http(opts.rpcUrl) });
  if (existsSync(file)) {
    const earlier = JSON.parse(readFileSync(file, 'utf8')) as LocalKms;
    if (await publicClient.getCode({ address: earlier.address })) return earlier;
  }
  const k256PrivateKey = randomBytes(32).toString('hex');
  const osImageHash = toHex(randomBytes(32));
  const wallet = createWalletClient({ chain, transport: http(opts.rpcUrl), account: opts.deployer });
  const deployment = await deployDstackKms({
    publicClient,
    wallet,
    owner: opts.deployer.address,
    k256PublicKey: kmsPublicKeyFromPrivate(k256PrivateKey) as Hex,
    osImageHash,
  });
  const kms: LocalKms = { address: deployment.kms, appImplementation: deployment.appImplementation, k256PrivateKey, osImageHash };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(kms, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return kms;
}
