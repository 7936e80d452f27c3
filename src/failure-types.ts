/**
 * Every ApplicationFailure type this service throws, and what the update workflow does with it.
 * Workflow-safe: no imports but types. Activities, workflows, the client and the CLI take the type
 * strings from here; `failure-types.test.ts` fails on a type thrown anywhere in `src/` that is not
 * written down here.
 *
 * The strings are part of recorded histories and of running workflows' retry policies: never
 * rename one.
 *
 * handling:
 * - `ends`: the change fails at once; retrying or an operator cannot make the same input work.
 * - `operator`: thrown non-retryable; the step stops and waits for an operator (retry or abort).
 * - `retried`: thrown retryable; the activity's retry policy tries again, and only once its
 *   attempts run out does the step wait for an operator.
 * - `refused`: an operator's Update is refused with the reason; the change itself goes on.
 */
import type { ChainErrorCode } from './chain/errors.ts';
import type { PhalaApiErrorKind } from './phala/api-errors.ts';

export type FailureHandling = 'ends' | 'operator' | 'retried' | 'refused';

export interface FailureTypeInfo {
  handling: FailureHandling;
  /** Thrown by workflow code itself (never by an activity). */
  workflowOnly?: true;
  /** A worker configuration problem: the signer manager does not retry it either. */
  workerConfig?: true;
  meaning: string;
}

export const FAILURE_TYPES = {
  // Ends the change. Activities' retry policies list the non-workflow ones (FINAL_FAILURES).
  InvalidInput: { handling: 'ends', meaning: 'the input breaks a rule (field named in the message)' },
  ApiRejected: { handling: 'ends', meaning: 'the API refused for good: auth, not found, invalid, or an unusable answer' },
  Aborted: { handling: 'ends', workflowOnly: true, meaning: 'an operator aborted the change' },
  DuplicateRequest: {
    handling: 'ends',
    workflowOnly: true,
    meaning: 'another run of this CVM carried the same requestId; nothing was sent for this one',
  },

  // Non-retryable, then an operator decides.
  KeyNotTrusted: {
    handling: 'operator',
    meaning: 'the env encryption key is not vouched for by the KMS (an expired signature is retried first)',
  },
  KmsNotFound: { handling: 'operator', meaning: 'no KMS is listed for the CVM’s KMS contract and chain' },
  ChainMismatch: { handling: 'operator', meaning: 'the RPC serves another chain, or the app contract is not what we expect' },
  NoSigner: { handling: 'operator', workerConfig: true, meaning: 'the worker has no signer key' },
  SignerMismatch: { handling: 'operator', workerConfig: true, meaning: 'the worker signs with another key than the manager’s' },
  ChainNotConfigured: { handling: 'operator', workerConfig: true, meaning: 'the worker has no RPC for the chain' },
  BroadcastRejected: { handling: 'operator', meaning: 'the node refused the signed transaction' },
  RegistrationReverted: { handling: 'operator', meaning: 'the registration transaction reverted' },
  Chain_INVALID_INPUT: { handling: 'operator', meaning: 'a chain call was given input it cannot use' },
  Chain_CONFIG: { handling: 'operator', meaning: 'the chain settings are wrong' },
  Chain_WOULD_REVERT: { handling: 'operator', meaning: 'gas estimation reverted: the call would fail on chain' },
  Chain_FEE_CAP_EXCEEDED: { handling: 'operator', meaning: 'a fee bump would pass the configured ceiling' },
  Chain_INCONSISTENT: { handling: 'operator', meaning: 'the node disagrees with bytes computed here' },
  ApplyWatchDenied: { handling: 'operator', meaning: 'the operations endpoint refused our credentials after the API accepted the change' },
  SealedEnvUnavailable: {
    handling: 'operator',
    meaning: 'the env ciphertext could not be read back from history (not retained, or its digest does not match)',
  },
  ApplyUnknown: { handling: 'operator', meaning: 'the accepted operation is not found and the CVM is idle: applied or not is unknown' },

  // An operator's Update answered with a reason; the change is not affected.
  OperatorActionRefused: { handling: 'refused', workflowOnly: true, meaning: 'retry, abort or useTransaction cannot be taken now' },

  // Retryable: Temporal tries again.
  RateLimited: { handling: 'retried', meaning: 'the API answered 429; retried after its Retry-After' },
  Conflict: { handling: 'retried', meaning: 'another operation runs on the CVM' },
  Api_transient: { handling: 'retried', meaning: 'a 5xx, a timeout or a network error from the API' },
  Api_hash_expired: { handling: 'retried', meaning: 'the API says the compose hash expired' },
  Api_tx_not_verified: { handling: 'retried', meaning: 'the API could not verify the registration yet' },
  Api_hash_not_allowed: { handling: 'retried', meaning: 'the API says the compose hash is not allowed yet' },
  ApplyWatchFailed: { handling: 'retried', meaning: 'the operations endpoint answered 404 or garbage after the API accepted the change' },
  RegistrationNotMinedYet: { handling: 'retried', meaning: 'a handed-over transaction is not mined (or not seen) yet' },
} as const satisfies Record<string, FailureTypeInfo>;

export type FailureType = keyof typeof FAILURE_TYPES;

/** The type strings by name, for `ApplicationFailure.nonRetryable(message, FAILURE.InvalidInput)`. */
export const FAILURE = Object.fromEntries(Object.keys(FAILURE_TYPES).map((k) => [k, k])) as { readonly [K in FailureType]: K };

export function isFailureType(type: string | undefined | null): type is FailureType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(FAILURE_TYPES, type);
}

/** How the update workflow treats a failure type; an unknown type is retried (Temporal's default). */
export function handlingOf(type: string | undefined | null): FailureHandling {
  return isFailureType(type) ? FAILURE_TYPES[type].handling : 'retried';
}

/** Activity failure types that end a change at once: the update and rollout retry policies' nonRetryableErrorTypes. */
export const FINAL_FAILURES: string[] = (Object.keys(FAILURE_TYPES) as FailureType[]).filter((t) => {
  const info: FailureTypeInfo = FAILURE_TYPES[t];
  return info.handling === 'ends' && !info.workflowOnly;
});

/** Worker configuration failures: the signer manager's activities do not retry them. */
export const CONFIG_FAILURES: string[] = (Object.keys(FAILURE_TYPES) as FailureType[]).filter(
  (t) => (FAILURE_TYPES[t] as FailureTypeInfo).workerConfig === true,
);

// The retryable API kinds keep their `Api_<kind>` types; the others map to named types in activities/failures.ts.
const API_KIND_TYPES = {
  transient: FAILURE.Api_transient,
  hash_expired: FAILURE.Api_hash_expired,
  tx_not_verified: FAILURE.Api_tx_not_verified,
  hash_not_allowed: FAILURE.Api_hash_not_allowed,
  conflict: FAILURE.Conflict,
  rate_limited: FAILURE.RateLimited,
  auth: FAILURE.ApiRejected,
  not_found: FAILURE.ApiRejected,
  invalid: FAILURE.ApiRejected,
  bad_response: FAILURE.ApiRejected,
} as const satisfies Record<PhalaApiErrorKind, FailureType>;

/** The failure type an API error of this kind becomes. */
export function apiFailureType<K extends PhalaApiErrorKind>(kind: K): (typeof API_KIND_TYPES)[K] {
  return API_KIND_TYPES[kind];
}

// Only the codes chain errors are not retried for become failures; the retryable ones stay plain errors.
const CHAIN_CODE_TYPES = {
  INVALID_INPUT: FAILURE.Chain_INVALID_INPUT,
  CONFIG: FAILURE.Chain_CONFIG,
  WOULD_REVERT: FAILURE.Chain_WOULD_REVERT,
  FEE_CAP_EXCEEDED: FAILURE.Chain_FEE_CAP_EXCEEDED,
  INCONSISTENT: FAILURE.Chain_INCONSISTENT,
} as const satisfies Record<Exclude<ChainErrorCode, 'RPC_UNAVAILABLE' | 'RPC_ERROR'>, FailureType>;

/** The failure type of a non-retryable chain error code. */
export function chainFailureType(code: keyof typeof CHAIN_CODE_TYPES): FailureType {
  return CHAIN_CODE_TYPES[code];
}

export type NonRetryableChainErrorCode = keyof typeof CHAIN_CODE_TYPES;
