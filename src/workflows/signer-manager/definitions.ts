// Names and shapes of the per-signer transaction manager, shared by the manager, the
// update workflow, the activities and the CLI. Workflow-safe: no Node or chain imports.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { MinedTx } from '../../activities/types.ts';

export const SIGNER_WORKFLOW_TYPE = 'signerManagerWorkflow';

/** One manager per (chain, key): the key's nonces are one sequence with one owner. */
export function signerWorkflowId(chainId: number, address: string): string {
  return `signer-${chainId}-${address.toLowerCase()}`;
}

/** `<chainId>:<address>`: finds a key's manager in the UI (no secret: an address). */
export const SignerAttribute = defineSearchAttributeKey('Signer', SearchAttributeType.KEYWORD);

export interface SignerManagerInput {
  chainId: number;
  /** Lowercase address of the key. */
  signer: string;
  /** Carried across continue-as-new. */
  state?: SignerState;
  /** Continue as new after this many history events (the server's own suggestion also counts). */
  maxHistoryEvents?: number;
}

export interface RegistrationRequest {
  /** Who asks, stable across retries of the ask: the update's workflow id and run id. */
  requestId: string;
  appId: string;
  composeHash: string;
  /** Depth before the answer, counted as viem does (the tx's own block is 1). */
  confirmations: number;
  /** The workflow that gets the answers as `registrationNotice` signals. */
  notifyWorkflowId: string;
  /**
   * The block at which the asker read the hash as not allowed. A registration the manager
   * remembers as mined at or before it has since been removed: it registers again.
   */
  notAllowedAtBlock?: number;
}

export interface WithdrawRequest {
  requestId: string;
  appId: string;
  composeHash: string;
}

export type RegistrationNotice = { appId: string; composeHash: string } & (
  | { state: 'sent'; tx: SentTx }
  | { state: 'mined'; tx: MinedTx; sent?: SentTx }
  | { state: 'confirmed'; tx: MinedTx; confirmations: number; sent?: SentTx }
  /** Allowed on chain by someone else: find that registration and use it. */
  | { state: 'already_allowed' }
  | { state: 'failed'; reason: string }
);

/**
 * A `mined` or `confirmed` notice carries `sent` (since 'quiet-notices') when the asker was
 * never told of that signing: on a quick chain the `sent` notice is not sent at all, and the
 * asker still learns the nonce and fees of the transaction that registers its hash.
 */
export interface SentTx {
  hash: string;
  nonce: number;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
}

export const registerSignal = defineSignal<[RegistrationRequest]>('register');
export const withdrawSignal = defineSignal<[WithdrawRequest]>('withdraw');
export const registrationNoticeSignal = defineSignal<[RegistrationNotice]>('registrationNotice');

// ---- State (JSON: it is the continue-as-new input) ----

export interface Subscriber {
  requestId: string;
  workflowId: string;
  confirmations: number;
  /** The last answer this subscriber was sent. */
  told?: 'sent' | 'mined' | 'confirmed' | 'failed' | 'already_allowed';
  /** Hash of the last 'sent' it was told about. */
  toldHash?: string;
}

export interface Registration {
  key: string;
  appId: string;
  composeHash: string;
  state: 'queued' | 'sending' | 'mined' | 'done' | 'failed';
  nonce?: number;
  tx?: MinedTx;
  subscribers: Subscriber[];
  reason?: string;
  /** Failed only in the sense that the chain already allows it: the asker finds that registration. */
  allowedElsewhere?: boolean;
  /** Depth it was watched to before it was set aside as done. */
  depth?: number;
  /** Workflow time of the last change, for status and for forgetting done ones. */
  since: number;
}

export interface SignedRecord {
  hash: string;
  raw: string;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
  gas: string;
  /** What these bytes do: register, or the 0-value self-send that cancels or fills. */
  kind: 'register' | 'self';
}

export interface NonceSlot {
  nonce: number;
  /** The registration this nonce carries; absent for a gap fill. */
  key?: string;
  /** Every signing for this nonce, one per fee level, oldest first. */
  txs: SignedRecord[];
  state: 'pending' | 'mined';
  mined?: MinedTx & { success: boolean };
  /** The depth the watcher last saw. */
  depth?: number;
  /** Workflow time the latest signing went out: a stall is measured from here. */
  sentAt: number;
  /** The interest was withdrawn: the slot is being cancelled by a self-send. */
  cancelled?: boolean;
  /** The replacement was refused at the operator's fee cap. */
  atCap?: { capWei: string; wantedWei: string };
  /** The node refused the bytes for good (funds, gas): why, and when we retry. */
  refused?: string;
  /** Replace at the next tick whatever the stall time says (fee below the base fee). */
  replaceNow?: boolean;
}

export interface SignerStats {
  signed: number;
  replaced: number;
  rebroadcast: number;
  filled: number;
  mined: number;
  reorgs: number;
}

export interface SignerState {
  nextNonce: number;
  registrations: Registration[];
  slots: NonceSlot[];
  /** Nonce -> workflow time first seen unheld below our highest pending nonce. */
  gaps: Record<string, number>;
  head?: number;
  accountNonce?: number;
  stats: SignerStats;
  lastError?: string;
  /** How many runs came before this one (continue-as-new). */
  generation: number;
}

export interface SignerStatus {
  chainId: number;
  signer: string;
  head?: number;
  accountNonce?: number;
  nextNonce: number;
  pending: {
    nonce: number;
    key?: string;
    state: NonceSlot['state'];
    ageMs: number;
    depth?: number;
    txs: { hash: string; kind: SignedRecord['kind']; maxFeePerGas: string; maxPriorityFeePerGas: string }[];
    note?: string;
  }[];
  registrations: { key: string; state: Registration['state']; nonce?: number; tx?: string; subscribers: number; reason?: string }[];
  oldestPendingAgeMs?: number;
  stats: SignerStats;
  lastError?: string;
  historyLength: number;
  continuedAsNew: number;
}

export const signerStatusQuery = defineQuery<SignerStatus>('status');

export function registrationKey(appId: string, composeHash: string): string {
  return `${appId.toLowerCase()}:${composeHash.toLowerCase().replace(/^0x/, '')}`;
}
