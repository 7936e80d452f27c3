// Shapes crossing the workflow/activity boundary. Everything here is recorded in history,
// so it is JSON: hex strings, numbers, wei as decimal strings. No secrets except the env
// itself, which only the encrypt activity reads and the payload codec protects.
import type { ComposeHashPolicy, EnvVar } from '../workflows/definitions.ts';

export interface ValidatedInput {
  env: EnvVar[];
  envKeys: string[];
}

export interface CvmTarget {
  cvmId: string;
  name?: string;
  /** 0x-prefixed lowercase app contract address for on-chain KMS; raw id otherwise. */
  appId: string;
  kms: 'phala' | 'onchain';
  kmsType: string;
  chainId?: number;
  /** KMS slug or id, for GET /kms/{kms}/pubkey/{app_id}. */
  kmsId?: string;
  kmsPublicKey?: string;
  encryptedEnvPubkey?: string;
  composeHash?: string;
}

export interface EncryptionKey {
  publicKey: string;
  source: 'cvm-record' | 'kms-signed';
}

export interface SubmitEnvInput {
  cvmId: string;
  encryptedEnv: string;
  envKeys: string[];
  composeHash?: string;
  transactionHash?: string;
  requestId?: string;
}

export type SubmitEnvOutcome =
  | { kind: 'in_progress'; correlationId: string; allowedEnvsChanged: boolean }
  | {
      kind: 'precondition_required';
      composeHash: string;
      appId: string;
      deviceId?: string;
      chainId?: number;
      kmsId?: string;
    }
  | { kind: 'hash_expired' | 'tx_not_verified' | 'hash_not_allowed'; message: string };

export interface ComposeHashCheck {
  policy: ComposeHashPolicy;
  expected: string;
  computed?: string;
  matches: boolean;
  detail: string;
}

export interface ChainPreflight {
  chainId: number;
  rpcChainId: number;
  signer: string;
  owner: string;
  signerIsOwner: boolean;
  alreadyAllowed: boolean;
  existing?: MinedTx;
  /** The worker's settings for this chain, unless the input overrides them. */
  confirmations: number;
  stallMs: number;
}

export interface SignedTx {
  hash: string;
  raw: string;
  nonce: number;
  from: string;
  to: string;
  chainId: number;
  gas: string;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
}

export interface MinedTx {
  hash: string;
  blockNumber: number;
  blockHash: string;
}

export type TxObservation =
  | ({ state: 'mined'; success: boolean } & MinedTx)
  | { state: 'pending' }
  | { state: 'dropped' }
  | { state: 'nonce_consumed'; accountNonce: number };

export type ConfirmationCheck =
  | { state: 'confirmed'; confirmations: number }
  | { state: 'pending'; confirmations: number }
  | { state: 'reorged'; detail: string };

export type RegistrationVerification = ({ ok: true } & MinedTx) | { ok: false; reason: string };

export type ApplyObservation =
  | { state: 'applied' }
  | { state: 'failed'; message: string }
  | { state: 'pending'; detail: string };
