// Which KMS signing key may vouch for an env encryption key. The API serves both the env key
// and a KMS key, so the API's word alone proves nothing: the key must come from the KMS
// contract on chain, or from a pin in the worker's configuration.
import { ApplicationFailure, log } from '@temporalio/activity';
import { FAILURE } from '../failure-types.ts';
import { sameKmsPublicKey } from '../phala/kms-signature.ts';

/** KMS signing keys pinned in KMS_PUBLIC_KEYS, 0x-prefixed compressed hex. */
export interface KmsKeyPins {
  byChain: ReadonlyMap<number, string>;
  /** Keyed by the KMS contract address in lowercase. */
  byContract: ReadonlyMap<string, string>;
}

export interface KmsTrustSettings {
  kmsKeyPins: KmsKeyPins;
  /** KMS_TRUST_API_KEY: with neither the contract nor a pin to check against, use the API's key (with a warning). */
  trustApiKmsKey: boolean;
}

/** What the chain says: the contract's key, or why it could not be read. */
export type OnChainKmsKey = { key: string } | { missing: string };

export interface KmsKeyQuestion {
  /** The key the API serves for the KMS. */
  apiKey: string;
  kmsId: string | undefined;
  chainId: number | undefined;
  contract: string | undefined;
  onChain: OnChainKmsKey;
}

interface Pin {
  key: string;
  /** How the pin is written in KMS_PUBLIC_KEYS. */
  entry: string;
}

/** The pin for this KMS: one for its contract is more specific than one for its chain. */
export function pinFor(pins: KmsKeyPins | undefined, chainId: number | undefined, contract: string | undefined): Pin | undefined {
  const byContract = contract ? pins?.byContract.get(contract.toLowerCase()) : undefined;
  if (byContract) return { key: byContract, entry: `${contract!.toLowerCase()}=…` };
  const byChain = chainId !== undefined ? pins?.byChain.get(chainId) : undefined;
  if (byChain) return { key: byChain, entry: `${chainId}=…` };
  return undefined;
}

// Messages stay under the 300 characters an operator's status shows: what to fix comes first.
function notTrusted(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${message}; the env key is not trusted, nothing was sent`, FAILURE.KeyNotTrusted);
}

/**
 * The KMS key to check the env key's signature with. The contract's key, when it can be read,
 * is the truth: the API's key and any pin must equal it. Otherwise the pin is, and the API's key
 * must equal that. With neither, the update is refused unless trustApiKmsKey says otherwise.
 */
export function trustedKmsKey(q: KmsKeyQuestion, settings: Partial<KmsTrustSettings>): string {
  const kms = `KMS ${q.kmsId ?? q.contract ?? '(unnamed)'}`;
  const pin = pinFor(settings.kmsKeyPins, q.chainId, q.contract);
  if ('key' in q.onChain) {
    const onChain = q.onChain.key;
    if (pin && !sameKmsPublicKey(pin.key, onChain)) {
      throw notTrusted(
        `the KMS_PUBLIC_KEYS pin ${pin.entry} disagrees with the key of the KMS contract on chain ${q.chainId} (${onChain}): correct or remove the pin`,
      );
    }
    if (!sameKmsPublicKey(q.apiKey, onChain)) {
      throw notTrusted(
        `the API's key for ${kms} (${q.apiKey}) does not match the key in the KMS contract on chain ${q.chainId} (${onChain})`,
      );
    }
    return onChain;
  }
  if (pin) {
    if (!sameKmsPublicKey(q.apiKey, pin.key)) {
      throw notTrusted(`the API's key for ${kms} (${q.apiKey}) differs from the KMS_PUBLIC_KEYS pin ${pin.entry} (${q.onChain.missing})`);
    }
    return pin.key;
  }
  if (settings.trustApiKmsKey) {
    log.warn('the KMS key cannot be checked against the chain or a pin; KMS_TRUST_API_KEY=true: the API-served key is trusted as served', {
      kms: q.kmsId,
      kmsContract: q.contract,
      chainId: q.chainId,
      reason: q.onChain.missing,
    });
    return q.apiKey;
  }
  const chain = q.chainId ?? '<chainId>';
  throw notTrusted(
    `${kms}'s key cannot be checked (${q.onChain.missing}): set CHAIN_RPC_URLS for chain ${chain}, ` +
      `or KMS_PUBLIC_KEYS=${chain}=0x… (or ${q.contract ?? '<KMS contract>'}=0x…), or KMS_TRUST_API_KEY=true`,
  );
}
