import { createPublicClient, createWalletClient, http, type Address, type Hex, type LocalAccount } from 'viem';
import { foundry } from 'viem/chains';
import { loadArtifact } from './compile-contracts.ts';

export interface AppSpec {
  /** A stable name the simulator seeds its apps by. */
  name: string;
  owner: 'signer' | 'other';
}

export interface DeployedApp {
  name: string;
  appId: Address;
  owner: Address;
}

export interface DeployOptions {
  rpcUrl: string;
  chainId: number;
  deployer: LocalAccount;
  owners: { signer: Address; other: Address };
  apps: AppSpec[];
  /** Apps from an earlier run of the same chain state: reused when their code is still there. */
  previous?: DeployedApp[];
}

export async function deployApps(opts: DeployOptions): Promise<DeployedApp[]> {
  const chain = { ...foundry, id: opts.chainId };
  const transport = http(opts.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  const wallet = createWalletClient({ chain, transport, account: opts.deployer });
  const artifact = loadArtifact('DstackApp');

  const result: DeployedApp[] = [];
  const pending: { spec: AppSpec; owner: Address; hash: Hex }[] = [];
  for (const spec of opts.apps) {
    const owner = opts.owners[spec.owner];
    const earlier = opts.previous?.find((p) => p.name === spec.name && p.owner === owner);
    if (earlier && (await publicClient.getCode({ address: earlier.appId }))) {
      result.push(earlier);
      continue;
    }
    // Sent back to back and awaited together: one block time for all apps, not one each.
    const hash = await wallet.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, args: [owner, true] });
    pending.push({ spec, owner, hash });
  }
  for (const { spec, owner, hash } of pending) {
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 100 });
    if (receipt.status !== 'success' || !receipt.contractAddress) {
      throw new Error(`deploying app ${spec.name} failed in transaction ${hash}`);
    }
    result.push({ name: spec.name, appId: receipt.contractAddress, owner });
  }
  return opts.apps.map((spec) => result.find((r) => r.name === spec.name)!);
}
