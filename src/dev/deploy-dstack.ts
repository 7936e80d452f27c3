/**
 * Puts a dstack-style KMS on the local chain the way dstack deploys one: the DstackApp and
 * DstackKms implementations, DstackKms behind an ERC1967 proxy initialised with the app
 * implementation, its k256 key in `kmsInfo` and the OS image the simulated node runs in
 * `allowedOsImages`. Apps are then created with `deployAndRegisterApp`, as the SDKs do.
 */
import { decodeEventLog, encodeFunctionData, type Abi, type Address, type Hex, type PublicClient, type WalletClient } from 'viem';
import { loadArtifact } from './compile-contracts.ts';

export interface DstackKmsDeployment {
  kms: Address;
  appImplementation: Address;
}

async function deployed(publicClient: PublicClient, hash: Hex, what: string): Promise<Address> {
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  if (receipt.status !== 'success' || !receipt.contractAddress) throw new Error(`deploying ${what} failed in transaction ${hash}`);
  return receipt.contractAddress;
}

async function mined(publicClient: PublicClient, hash: Hex, what: string): Promise<void> {
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  if (receipt.status !== 'success') throw new Error(`${what} failed in transaction ${hash}`);
}

export async function deployDstackKms(opts: {
  publicClient: PublicClient;
  wallet: WalletClient;
  owner: Address;
  /** Compressed secp256k1 key the KMS signs env-encryption keys with. */
  k256PublicKey: Hex;
  osImageHash: Hex;
}): Promise<DstackKmsDeployment> {
  const { publicClient, wallet } = opts;
  const account = wallet.account!;
  const app = loadArtifact('dstack/DstackApp');
  const kms = loadArtifact('dstack/DstackKms');
  const proxy = loadArtifact('dstack/ERC1967Proxy');
  // Sent one after the other (one nonce each), awaited together: one block time, not two.
  const appTx = await wallet.deployContract({ abi: app.abi, bytecode: app.bytecode, account, chain: wallet.chain });
  const kmsTx = await wallet.deployContract({ abi: kms.abi, bytecode: kms.bytecode, account, chain: wallet.chain });
  const [appImplementation, kmsImplementation] = await Promise.all([
    deployed(publicClient, appTx, 'DstackApp'),
    deployed(publicClient, kmsTx, 'DstackKms'),
  ]);
  const init = encodeFunctionData({ abi: kms.abi, functionName: 'initialize', args: [opts.owner, appImplementation] });
  const kmsAddress = await deployed(
    publicClient,
    await wallet.deployContract({
      abi: proxy.abi,
      bytecode: proxy.bytecode,
      args: [kmsImplementation, init],
      account,
      chain: wallet.chain,
    }),
    'the DstackKms proxy',
  );
  const write = (functionName: string, args: unknown[]) =>
    wallet.writeContract({ address: kmsAddress, abi: kms.abi, functionName, args, account, chain: wallet.chain });
  const infoTx = await write('setKmsInfo', [{ k256Pubkey: opts.k256PublicKey, caPubkey: '0x', quote: '0x', eventlog: '0x' }]);
  const imageTx = await write('addOsImageHash', [opts.osImageHash]);
  await Promise.all([mined(publicClient, infoTx, 'setKmsInfo'), mined(publicClient, imageTx, 'addOsImageHash')]);
  return { kms: kmsAddress, appImplementation };
}

/** Sends `deployAndRegisterApp` (the SDKs' five-argument form) without waiting for it. */
export function sendDeployAndRegisterApp(opts: {
  wallet: WalletClient;
  kms: Address;
  owner: Address;
  allowAnyDevice?: boolean;
  deviceId?: Hex;
  composeHash?: Hex;
}): Promise<Hex> {
  const kms = loadArtifact('dstack/DstackKms');
  const zero = `0x${'00'.repeat(32)}` as Hex;
  return opts.wallet.writeContract({
    address: opts.kms,
    abi: kms.abi,
    functionName: 'deployAndRegisterApp',
    args: [opts.owner, false, opts.allowAnyDevice ?? true, opts.deviceId ?? zero, opts.composeHash ?? zero],
    account: opts.wallet.account!,
    chain: opts.wallet.chain,
  });
}

/** The app id a deployAndRegisterApp transaction created (from its AppDeployedViaFactory event). */
export async function appIdFromDeployment(publicClient: PublicClient, hash: Hex): Promise<Address> {
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  if (receipt.status !== 'success') throw new Error(`deployAndRegisterApp failed in transaction ${hash}`);
  const abi = loadArtifact('dstack/DstackKms').abi as Abi;
  for (const log of receipt.logs) {
    try {
      const ev = decodeEventLog({ abi, data: log.data, topics: log.topics });
      if (ev.eventName === 'AppDeployedViaFactory') return (ev.args as unknown as { appId: Address }).appId;
    } catch {
      // Other contracts' logs (the app's own events) do not decode with this ABI.
    }
  }
  throw new Error(`transaction ${hash} emitted no AppDeployedViaFactory`);
}
