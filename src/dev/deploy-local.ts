// The compose `local` profile's one-shot job: deploys the DstackKms and its apps to the
// anvil at CHAIN_RPC_URL with anvil's dev accounts and writes stack.json into --stack-dir,
// where the simulator (`src/simulator/main.ts --stack-dir`) seeds its CVMs from. Idempotent.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mnemonicToAccount } from 'viem/accounts';
import { ANVIL_MNEMONIC, anvilRpc } from './anvil.ts';
import { deployApps, type DeployedApp } from './deploy-apps.ts';
import { ensureLocalKms } from './local-kms.ts';
import { DEFAULT_APPS } from './stack.ts';

const { values } = parseArgs({ options: { 'stack-dir': { type: 'string', default: '/stack' } } });
const rpcUrl = process.env.CHAIN_RPC_URL;
if (!rpcUrl) {
  process.stderr.write('CHAIN_RPC_URL is required (the anvil to deploy to)\n');
  process.exit(2);
}
const dir = values['stack-dir']!;
mkdirSync(dir, { recursive: true });
const chainId = Number(BigInt(await anvilRpc<string>(rpcUrl, 'eth_chainId')));
const signer = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 0 });
const other = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 });
const file = join(dir, 'stack.json');
const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { apps?: DeployedApp[] }).apps : undefined;
// Apps are created through a DstackKms, as on Phala Cloud, so the simulator's boot check passes.
const kms = await ensureLocalKms({ dataDir: dir, rpcUrl, chainId, deployer: signer });
const apps = await deployApps({
  kms: kms.address,
  rpcUrl,
  chainId,
  deployer: signer,
  owners: { signer: signer.address, other: other.address },
  apps: DEFAULT_APPS,
  previous,
});
writeFileSync(file, `${JSON.stringify({ rpcUrl, chainId, signerAddress: signer.address, kmsAddress: kms.address, apps }, null, 2)}\n`);
process.stdout.write(`deployed ${apps.map((a) => `${a.name}=${a.appId}`).join(', ')} on chain ${chainId}\n`);
