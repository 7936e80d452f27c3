/**
 * Where the env ciphertext lives between the encrypt step and the submits: in the history
 * once, as the encrypt activity's result, and nowhere else. The submits get this reference and
 * read the bytes back from the run's history (activities/sealed-env-reader.ts), so phase 1 and
 * phase 2 send the same ciphertext, also from another worker after a crash, without each
 * submit writing it into history again.
 *
 * The encrypt result is binary: sha256(ciphertext) (32 bytes) ‖ ciphertext. Binary, not hex,
 * because hex doubles the bytes and the payload must fit Temporal's limit (payload-budget.ts).
 * Workflow-safe.
 */
export const SEALED_DIGEST_BYTES = 32;

export interface SealedEnvRef {
  /** The run whose history holds the encrypt activity's result. */
  runId: string;
  /** The encrypt activity's id in that run: unique per run, set by the workflow. */
  activityId: string;
  /** Lowercase hex sha256 of the ciphertext. */
  sha256: string;
  /** Ciphertext length in bytes. */
  bytes: number;
}

export function sealedEnvRef(sealed: Uint8Array, at: { runId: string; activityId: string }): SealedEnvRef {
  if (!(sealed instanceof Uint8Array) || sealed.length <= SEALED_DIGEST_BYTES) {
    throw new TypeError('the encrypt step returned no sealed env');
  }
  let sha256 = '';
  for (let i = 0; i < SEALED_DIGEST_BYTES; i++) sha256 += sealed[i]!.toString(16).padStart(2, '0');
  return { ...at, sha256, bytes: sealed.length - SEALED_DIGEST_BYTES };
}
