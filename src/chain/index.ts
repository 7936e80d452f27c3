// The chain side of the env-update flow. Activities wrap these; workflows import only types.
export { ChainError, redactUrls, toChainError, type ChainErrorCode } from './errors.ts';
export {
  chainFor,
  createChainClients,
  describeRpcUrl,
  parseChainRpcConfig,
  rpcUrlFor,
  type ChainClients,
  type ChainRpcConfig,
  type CreateChainClientsOptions,
} from './clients.ts';
export { normalizeComposeHash } from './inputs.ts';
export {
  encodeAddComposeHash,
  signTransaction,
  type FeesInput,
  type SignTransactionParams,
  type SignedTransaction,
} from './sign-transaction.ts';
export {
  broadcastTransaction,
  classifyBroadcastError,
  type BroadcastParams,
  type BroadcastResult,
  type MaybeOursReason,
  type RejectedReason,
} from './broadcast.ts';
export { observeNonce, type NonceObservation, type ObserveNonceParams } from './observe-nonce.ts';
export { bumpFees, replacementFees, MIN_BUMP_PERCENT, type BumpFeesOptions, type Fees } from './bump-fees.ts';
export {
  checkConfirmations,
  waitForConfirmations,
  type CheckConfirmationsParams,
  type ConfirmationCheck,
  type ConfirmationTarget,
  type WaitForConfirmationsParams,
} from './confirmations.ts';
export {
  findRegistration,
  type FindRegistrationParams,
  type FindRegistrationResult,
  type RegistrationLocation,
} from './find-registration.ts';
export {
  verifyRegistration,
  type VerifyRegistrationFailure,
  type VerifyRegistrationParams,
  type VerifyRegistrationResult,
} from './verify-registration.ts';
export { preflight, type PreflightParams, type PreflightResult } from './preflight.ts';
export { dstackAppAbi, dstackAppErrorsAbi } from './dstack-app-abi.ts';
