// The worker's memory of the ciphertexts it sealed, so a submit on the worker that encrypted
// (the usual case) does not read the run's history back page by page: in a fleet of 200
// updates those reads were some 2,800 history calls to a server that was already the
// bottleneck. Only what the reference's digest names is ever returned, so a sealing whose
// result the server did not record (a late attempt) cannot be sent by mistake; a miss falls
// back to the history. Ciphertext only: nothing here can be read without the CVM's key.
import { SEALED_DIGEST_BYTES, type SealedEnvRef } from '../workflows/sealed-env.ts';

/** Room for a few hundred typical envs, or 16 at the API's 1 MiB maximum. */
export const DEFAULT_SEALED_CACHE_BYTES = 32 * 1024 * 1024;

export class SealedEnvCache {
  /** sha256 hex → ciphertext hex; Map order is the eviction order (oldest use first). */
  readonly #entries = new Map<string, string>();
  #bytes = 0;

  constructor(readonly maxBytes = DEFAULT_SEALED_CACHE_BYTES) {}

  /** Keeps a sealed envelope (digest ‖ ciphertext) as the encrypt step returned it. */
  remember(sealed: Uint8Array): void {
    if (sealed.length <= SEALED_DIGEST_BYTES) return;
    const ciphertext = sealed.length - SEALED_DIGEST_BYTES;
    if (ciphertext > this.maxBytes) return;
    const digest = Buffer.from(sealed.subarray(0, SEALED_DIGEST_BYTES)).toString('hex');
    this.#forget(digest);
    this.#entries.set(digest, Buffer.from(sealed.subarray(SEALED_DIGEST_BYTES)).toString('hex'));
    this.#bytes += ciphertext;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes <= this.maxBytes) break;
      this.#forget(oldest);
    }
  }

  /** The ciphertext (lowercase hex) the reference names, if this worker sealed it and still has it. */
  recall(ref: SealedEnvRef): string | undefined {
    const hex = this.#entries.get(ref.sha256);
    if (hex === undefined || hex.length / 2 !== ref.bytes) return undefined;
    // Used again: the last to go.
    this.#entries.delete(ref.sha256);
    this.#entries.set(ref.sha256, hex);
    return hex;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  #forget(digest: string): void {
    const hex = this.#entries.get(digest);
    if (hex === undefined) return;
    this.#entries.delete(digest);
    this.#bytes -= hex.length / 2;
  }
}
