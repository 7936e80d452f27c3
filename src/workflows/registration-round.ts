// What one phase-1 round knows once the API asked for an on-chain registration: enough for a
// continued run to pick up the registration, its confirmations and phase 2 without the
// plaintext env. Workflow-safe: types only.
import type { ChainPreflight, CvmTarget, MinedTx, SubmitEnvInput } from '../activities/types.ts';
import type { UpdateStatus } from './definitions.ts';

/** What every submit of this change sends besides the registration: the ciphertext, never the plaintext. */
/** What both phases send: the ciphertext itself (before 'sealed-env') or its reference in history. */
export type Submission = Pick<SubmitEnvInput, 'cvmId' | 'encryptedEnv' | 'sealedEnv' | 'envKeys' | 'requestId'>;

export interface RegistrationRound {
  target: CvmTarget;
  submission: Submission;
  /** The phase-1 round this registration belongs to (a compose hash can expire and be asked again). */
  round: number;
  chainId: number;
  appId: string;
  composeHash: string;
  pre: ChainPreflight;
  confirmations: number;
  /** The worker's signer registers the hash (through its transaction manager). */
  ours: boolean;
}

/**
 * A registration wait carried over to a new run: the owner's registration, confirmations of a
 * registration, or the signer manager's answer. `slices` (re-asks for the manager) lets the
 * backoff go on where it was.
 */
export interface RegistrationResume {
  at: 'owner' | 'confirming' | 'managed';
  round: RegistrationRound;
  /** `confirming`: the registration whose depth is awaited. */
  registration?: MinedTx;
  slices: number;
  status: UpdateStatus;
}
