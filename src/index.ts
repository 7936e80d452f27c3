// Public surface of the package: the Phala Cloud library and the backend helpers.
export { parseEnvVars } from './phala/dotenv.ts';
export { encryptEnvVars, decryptEnvVars, generateEnvKeyPair, EnvCryptoError } from './phala/env-crypto.ts';
export { validateEnvVars, EnvValidationError, type EnvValidationIssue } from './phala/env-validation.ts';
export { getComposeHash, canonicalComposeJson } from './phala/compose-hash.ts';
export {
  signEnvEncryptPublicKey,
  verifyEnvEncryptPublicKey,
  checkEnvEncryptPublicKey,
  kmsPublicKeyFromPrivate,
} from './phala/kms-signature.ts';
export { PhalaCloudClient, type PhalaCloudClientOptions, type UpdateCvmEnvsParams } from './phala/api-client.ts';
export { PhalaApiError, type PhalaApiErrorKind } from './phala/api-errors.ts';
export type * from './phala/api-schemas.ts';
export { checkUpdateEnvInput } from './workflows/input-schema.ts';
export { FAILURE, FAILURE_TYPES, handlingOf, type FailureType, type FailureHandling } from './failure-types.ts';

export {
  startEnvUpdate,
  awaitEnvUpdate,
  getEnvUpdateStatus,
  retryEnvUpdate,
  abortEnvUpdate,
  useRegistrationTransaction,
  envUpdateHandle,
  UpdateAlreadyRunningError,
  RequestAlreadyUsedError,
  OperatorActionRefusedError,
  type OperatorActionResult,
  InvalidUpdateInputError,
  type InputProblem,
  PayloadTooLargeError,
  type EnvUpdateHandle,
  type StartedEnvUpdate,
  startRollout,
  awaitRollout,
  getRolloutStatus,
  pauseRollout,
  resumeRollout,
  abortRollout,
  approveRollout,
  retryFailedRollout,
  rolloutHandle,
  RolloutAlreadyExistsError,
  RolloutActionRefusedError,
  type RolloutHandle,
  type StartedRollout,
  type RolloutInput,
  type RolloutResult,
  type RolloutStatus,
  type RolloutState,
  type RolloutFailure,
  type RolloutTargets,
} from './client.ts';
export type {
  UpdateEnvInput,
  UpdateEnvResult,
  UpdateStatus,
  UpdatePhase,
  ComposeHashPolicy,
  OperatorAnswer,
} from './workflows/definitions.ts';
export { createDataConverter, generatePayloadKeySpec } from './codec.ts';
export { envPayloadBudget, payloadBudgetProblem, DEFAULT_PAYLOAD_LIMIT_BYTES, type PayloadBudget } from './workflows/payload-budget.ts';
