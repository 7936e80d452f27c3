import { ApplicationFailure } from '@temporalio/activity';
import { PhalaApiError, type PhalaApiErrorKind } from '../phala/api-errors.ts';
import { apiFailureType, FAILURE } from '../failure-types.ts';

/** Fails the workflow at once: the input itself is wrong. */
export function invalidInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, FAILURE.InvalidInput);
}

/**
 * Maps an API error to how Temporal should treat it. The message is the API's own
 * (never our headers), so it is safe for history.
 */
export function apiFailure(err: unknown, what: string): unknown {
  if (!(err instanceof PhalaApiError)) return err;
  const failure = failureFor(err, what);
  apiErrorKinds.set(failure, err.kind);
  return failure;
}

// The API error kind behind a failure, for the metrics (the failure types merge some kinds).
const apiErrorKinds = new WeakMap<object, PhalaApiErrorKind>();

/** The Phala Cloud API error kind a failure came from, if it came from one. */
export function apiErrorKindOf(err: unknown): PhalaApiErrorKind | undefined {
  return typeof err === 'object' && err !== null ? apiErrorKinds.get(err) : undefined;
}

function failureFor(err: PhalaApiError, what: string): ApplicationFailure {
  const message = `${what}: ${err.status ?? 'no response'} ${err.kind}: ${err.message}${err.requestId ? ` (request ${err.requestId})` : ''}`;
  switch (err.kind) {
    case 'auth':
    case 'not_found':
    case 'invalid':
    case 'bad_response':
      return ApplicationFailure.nonRetryable(message, apiFailureType(err.kind));
    case 'rate_limited':
      return ApplicationFailure.create({ message, type: apiFailureType(err.kind), nextRetryDelay: err.retryAfterMs ?? 5000 });
    case 'conflict':
      // Another operation runs on the CVM: wait for it rather than hammer the API.
      return ApplicationFailure.create({ message, type: apiFailureType(err.kind), nextRetryDelay: 5000 });
    default:
      return ApplicationFailure.create({ message, type: apiFailureType(err.kind) });
  }
}
