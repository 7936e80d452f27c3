/**
 * Exactly what an owner who signs elsewhere must propose to register a compose hash: a call of
 * `addComposeHash(hash)` on the app contract, with no value, on the app's chain. For a Safe owner
 * (GET /apps/{id}/kms-info says `deployer_type: "safe"`) it also carries the Safe app link the
 * API gives, or one built from the Safe's address when the API gives none.
 */
import { encodeFunctionData, getAddress, type Address, type Hex } from 'viem';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { normalizeComposeHash, parseAddress } from './inputs.ts';

export type DeployerType = 'eoa' | 'safe' | 'legacy_multisig' | 'erc4337' | 'contract';

export interface RegistrationProposal {
  chainId: number;
  /** The app contract (its address is the app id). */
  to: Address;
  /** addComposeHash(composeHash) calldata. */
  data: Hex;
  /** Wei, as a decimal string: always "0". */
  value: '0';
  /** Human form of `data`, for reviewers. */
  call: string;
  owner?: Address;
  deployerType?: DeployerType;
  /** Where a Safe owner creates the transaction (deployer_type "safe" only). */
  safeAppUrl?: string;
}

// Safe's chain short names (EIP-3770 prefixes) for the chains Phala Cloud's on-chain KMS uses.
const SAFE_CHAIN_PREFIX: Record<number, string> = { 1: 'eth', 8453: 'base', 11155111: 'sep', 84532: 'basesep' };

export function buildRegistrationProposal(input: {
  chainId: number;
  appId: string;
  composeHash: string;
  /** From GET /apps/{app_id}/kms-info, when known. */
  kmsInfo?: { deployer_address?: string | null; deployer_type?: string | null; safe_app_url?: string | null } | null;
}): RegistrationProposal {
  if (!Number.isSafeInteger(input.chainId) || input.chainId <= 0) throw new TypeError('chainId must be a positive integer');
  const to = parseAddress(input.appId.startsWith('0x') ? input.appId : `0x${input.appId}`, 'appId');
  const hash = normalizeComposeHash(input.composeHash);
  const proposal: RegistrationProposal = {
    chainId: input.chainId,
    to: getAddress(to),
    data: encodeFunctionData({ abi: dstackAppAbi, functionName: 'addComposeHash', args: [hash] }),
    value: '0',
    call: `addComposeHash(${hash})`,
  };
  const info = input.kmsInfo;
  if (info?.deployer_address) proposal.owner = getAddress(parseAddress(info.deployer_address, 'deployer_address'));
  if (info?.deployer_type) proposal.deployerType = info.deployer_type as DeployerType;
  if (info?.deployer_type === 'safe') {
    const prefix = SAFE_CHAIN_PREFIX[input.chainId];
    const url =
      info.safe_app_url ?? (proposal.owner && prefix ? `https://app.safe.global/home?safe=${prefix}:${proposal.owner}` : undefined);
    if (url) proposal.safeAppUrl = url;
  }
  return proposal;
}

/** The proposal as lines for a CLI or a waiting status. */
export function describeRegistrationProposal(p: RegistrationProposal): string[] {
  return [
    `chain: ${p.chainId}`,
    `to:    ${p.to}`,
    `value: ${p.value}`,
    `data:  ${p.data}`,
    `call:  ${p.call}`,
    ...(p.owner ? [`owner: ${p.owner}${p.deployerType ? ` (${p.deployerType})` : ''}`] : []),
    ...(p.safeAppUrl ? [`safe:  ${p.safeAppUrl}`] : []),
  ];
}
