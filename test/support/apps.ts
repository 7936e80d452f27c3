import { createPublicClient, createWalletClient, getAddress, http, type Address, type LocalAccount } from 'viem';
import { foundry } from 'viem/chains';
import { appIdFromDeployment, sendDeployAndRegisterApp } from '../../src/dev/deploy-dstack.ts';
import type { TestStack } from './stack.ts';

/**
 * A fresh app owned by `owner`, created the way the SDKs create one: deployAndRegisterApp on the
 * stack's DstackKms (an ERC1967 proxy, registered, any device). The simulator's boot check asks
 * that KMS, so apps that must boot are made here.
 */
export async function deployRegisteredApp(stack: TestStack, owner: LocalAccount): Promise<Address> {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  const wallet = createWalletClient({ chain, transport, account: owner });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
  const hash = await sendDeployAndRegisterApp({ wallet, kms: getAddress(stack.info.kmsAddress as string), owner: owner.address });
  return appIdFromDeployment(publicClient, hash);
}
