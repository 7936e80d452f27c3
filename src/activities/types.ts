// Shapes crossing the workflow/activity boundary. Everything here is recorded in history,
// so it is JSON: hex strings, numbers, wei as decimal strings. No secrets except the env
// itself, which only the encrypt activity reads and the payload codec protects.
import type { ComposeHashPolicy, EnvVar } from '../workflows/definitions.ts';
import type { SealedEnvRef } from '../workflows/sealed-env.ts';

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
  /** The on-chain KMS's contract, whose kmsInfo() holds the key that vouches for env keys. */
  kmsContract?: string;
  encryptedEnvPubkey?: string;
  composeHash?: string;
}

export interface EncryptionKey {
  publicKey: string;
  source: 'cvm-record' | 'kms-signed';
}

export interface SubmitEnvInput {
  cvmId: string;
  /** Histories before the 'sealed-env' patch carry the ciphertext itself in every submit. */
  encryptedEnv?: string;
  /** Since then: where the ciphertext is in history (workflows/sealed-env.ts). */
  sealedEnv?: SealedEnvRef;
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
  /** The block every read was pinned to (absent in histories recorded before it was reported). */
  blockNumber?: number;
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
  { state: 'confirmed'; confirmations: number } | { state: 'pending'; confirmations: number } | { state: 'reorged'; detail: string };

export type RegistrationVerification = ({ ok: true } & MinedTx) | { ok: false; reason: string };

export type ApplyObservation = { state: 'applied' } | { state: 'failed'; message: string } | { state: 'pending'; detail: string };

// ---- The per-signer transaction manager ----

/** What a transaction of the manager carries: a registration, or a 0-value self-send. */
export type TxPayload = { kind: 'register'; appId: string; composeHash: string } | { kind: 'self' };

export interface SignerSettings {
  chainId: number;
  /** Depth for requests that name none. */
  confirmations: number;
  stallMs: number;
  maxFeePerGasWei?: string;
}

export type NewRegistrationResult = { appId: string; composeHash: string } & (
  { outcome: 'signed'; signed: SignedTx } | { outcome: 'already_allowed' } | { outcome: 'rejected'; reason: string }
);

export type ReplacementResult = { outcome: 'signed'; signed: SignedTx } | { outcome: 'at_cap'; capWei: string; wantedWei: string };

export type BroadcastOutcome = { result: 'sent' | 'known' | 'underpriced' } | { result: 'rejected'; reason: string };

export interface ObserveSignerInput {
  chainId: number;
  from: string;
  /** Wait for a block after this one first (at most maxWaitMs); absent: look at once. */
  afterBlock?: number;
  maxWaitMs: number;
  pending: { nonce: number; hashes: string[] }[];
  mined: { nonce: number; hash: string; blockNumber: number; blockHash: string; confirmations: number }[];
}

export interface SignerObservationResult {
  head: number;
  accountNonce: number;
  pending: (
    | { nonce: number; state: 'mined'; hash: string; blockNumber: number; blockHash: string; success: boolean }
    | { nonce: number; state: 'pending'; pendingHashes: string[] }
    | { nonce: number; state: 'dropped' | 'consumed' }
  )[];
  mined: (
    | { nonce: number; hash: string; state: 'pending' | 'confirmed'; confirmations: number; latestBlock: number }
    | {
        nonce: number;
        hash: string;
        state: 'reorged';
        reason: 'receipt-missing' | 'moved' | 'block-replaced';
        current?: { blockNumber: number; blockHash: string; status: 'success' | 'reverted' };
      }
  )[];
}
