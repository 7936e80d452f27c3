// A Safe (the official @safe-global/safe-contracts 1.4.1 build) on anvil, as a test fixture:
// deployed through its own proxy factory, N owners, threshold M, and execTransaction with the
// owners' EIP-712 signatures, the way the Safe app and its transaction service do it.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import {
  concat,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  getAddress,
  http,
  parseEventLogs,
  zeroAddress,
  type Abi,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type WalletClient,
} from 'viem';
import { foundry } from 'viem/chains';

const require = createRequire(import.meta.url);

function artifact(path: string): { abi: Abi; bytecode: Hex } {
  const file = require.resolve(`@safe-global/safe-contracts/build/artifacts/contracts/${path}`);
  const json = JSON.parse(readFileSync(file, 'utf8')) as { abi: Abi; bytecode: Hex };
  return { abi: json.abi, bytecode: json.bytecode };
}

export const safeArtifact = () => artifact('Safe.sol/Safe.json');
const factoryArtifact = () => artifact('proxies/SafeProxyFactory.sol/SafeProxyFactory.json');

export interface SafeFixture {
  address: Address;
  owners: LocalAccount[];
  threshold: number;
  /** Signs with `signers` (each an owner) and executes from `executor`; returns the tx hash once mined. */
  execute(
    call: { to: Address; data: Hex; value?: bigint },
    signers: LocalAccount[],
    executor: LocalAccount,
  ): Promise<{ hash: Hex; success: boolean }>;
}

function clients(rpcUrl: string, chainId: number, account: LocalAccount): { pub: PublicClient; wallet: WalletClient } {
  const chain = { ...foundry, id: chainId };
  return {
    pub: createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: 50 }),
    wallet: createWalletClient({ chain, transport: http(rpcUrl), account }),
  };
}

export async function deploySafe(opts: {
  rpcUrl: string;
  chainId: number;
  deployer: LocalAccount;
  owners: LocalAccount[];
  threshold: number;
}): Promise<SafeFixture> {
  const { pub, wallet } = clients(opts.rpcUrl, opts.chainId, opts.deployer);
  const safe = safeArtifact();
  const factory = factoryArtifact();
  const deploy = async (a: { abi: Abi; bytecode: Hex }) => {
    const hash = await wallet.deployContract({ abi: a.abi, bytecode: a.bytecode, account: opts.deployer, chain: wallet.chain });
    return getAddress((await pub.waitForTransactionReceipt({ hash })).contractAddress!);
  };
  const singleton = await deploy(safe);
  const factoryAddress = await deploy(factory);
  const setup = encodeFunctionData({
    abi: safe.abi,
    functionName: 'setup',
    args: [opts.owners.map((o) => o.address), BigInt(opts.threshold), zeroAddress, '0x', zeroAddress, zeroAddress, 0n, zeroAddress],
  });
  const created = await wallet.writeContract({
    address: factoryAddress,
    abi: factory.abi,
    functionName: 'createProxyWithNonce',
    args: [singleton, setup, BigInt(Date.now())],
    account: opts.deployer,
    chain: wallet.chain,
  });
  const receipt = await pub.waitForTransactionReceipt({ hash: created });
  const [event] = parseEventLogs({ abi: factory.abi, logs: receipt.logs, eventName: 'ProxyCreation' }) as unknown as {
    args: { proxy: Address };
  }[];
  const address = getAddress(event!.args.proxy);

  return {
    address,
    owners: opts.owners,
    threshold: opts.threshold,
    async execute(call, signers, executor) {
      const nonce = (await pub.readContract({ address, abi: safe.abi, functionName: 'nonce' })) as bigint;
      const message = {
        to: call.to,
        value: call.value ?? 0n,
        data: call.data,
        operation: 0,
        safeTxGas: 0n,
        baseGas: 0n,
        gasPrice: 0n,
        gasToken: zeroAddress,
        refundReceiver: zeroAddress,
        nonce,
      };
      const types = {
        SafeTx: [
          { name: 'to', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'data', type: 'bytes' },
          { name: 'operation', type: 'uint8' },
          { name: 'safeTxGas', type: 'uint256' },
          { name: 'baseGas', type: 'uint256' },
          { name: 'gasPrice', type: 'uint256' },
          { name: 'gasToken', type: 'address' },
          { name: 'refundReceiver', type: 'address' },
          { name: 'nonce', type: 'uint256' },
        ],
      } as const;
      // The Safe wants the signatures ordered by owner address, ascending.
      const ordered = [...signers].sort((a, b) => (BigInt(a.address) < BigInt(b.address) ? -1 : 1));
      const signatures = await Promise.all(
        ordered.map((s) =>
          s.signTypedData({ domain: { chainId: opts.chainId, verifyingContract: address }, types, primaryType: 'SafeTx', message }),
        ),
      );
      const exec = clients(opts.rpcUrl, opts.chainId, executor);
      const hash = await exec.wallet.writeContract({
        address,
        abi: safe.abi,
        functionName: 'execTransaction',
        args: [message.to, message.value, message.data, 0, 0n, 0n, 0n, zeroAddress, zeroAddress, concat(signatures)],
        account: executor,
        chain: exec.wallet.chain,
      });
      const receipt = await exec.pub.waitForTransactionReceipt({ hash });
      // execTransaction does not revert when the inner call fails: it emits ExecutionFailure.
      const failed = parseEventLogs({ abi: safe.abi, logs: receipt.logs, eventName: 'ExecutionFailure' });
      return { hash, success: receipt.status === 'success' && failed.length === 0 };
    },
  };
}
