import { FINAL_FAILURES } from '../failure-types.ts';

/**
 * One step's tries, as an activity task or a local activity: about four minutes of them,
 * then `UpdateTracker.step` asks an operator. What no retry can cure fails at once.
 */
export const STEP_RETRY = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 12,
  nonRetryableErrorTypes: FINAL_FAILURES,
};
