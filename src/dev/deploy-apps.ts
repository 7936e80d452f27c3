import { createPublicClient, createWalletClient, http, type Address, type Hex, type LocalAccount } from 'viem';
import { foundry } from 'viem/chains';
import { appIdFromDeployment, sendDeployAndRegisterApp } from './deploy-dstack.ts';

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
  /** The DstackKms every app is deployed and registered through. */
  kms: Address;
  /** Apps from an earlier run of the same chain state: reused when their code is still there. */
  previous?: DeployedApp[];
}

export async function deployApps(opts: DeployOptions): Promise<DeployedApp[]> {
  const chain = { ...foundry, id: opts.chainId };
  const transport = http(opts.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  const wallet = createWalletClient({ chain, transport, account: opts.deployer });

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
    // As the SDKs create apps: an ERC1967 proxy per app, registered with the KMS, any device.
    const hash = await sendDeployAndRegisterApp({ wallet, kms: opts.kms, owner });
    pending.push({ spec, owner, hash });
  }
  for (const { spec, owner, hash } of pending) {
    result.push({ name: spec.name, appId: await appIdFromDeployment(publicClient, hash), owner });
  }
  return opts.apps.map((spec) => result.find((r) => r.name === spec.name)!);
}
