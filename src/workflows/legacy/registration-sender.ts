// The per-workflow sender of the first release, kept only so that updates started before
// the per-signer transaction manager replay and finish as they began (see the
// 'signer-manager' patch in update-cvm-env.ts). New updates never run it. Delete it once
// no workflow started by that release is open.
//
// Every signed transaction is an activity result, so its raw bytes are in history before
// any broadcast; a retry or a new worker rebroadcasts those bytes instead of signing again.
import { ApplicationFailure } from '@temporalio/workflow';
import type { createActivities } from '../../activities/index.ts';
import type { MinedTx, SignedTx } from '../../activities/types.ts';
import type { UpdateStatus } from '../definitions.ts';
import { FAILURE } from '../../failure-types.ts';

export const REGISTRATION_REVERTED = FAILURE.RegistrationReverted;

/** The chain activities this file drives, typed from the activity factory itself. */
export type ChainActivities = Pick<
  ReturnType<typeof createActivities>,
  'chainPreflight' | 'signRegistration' | 'broadcastTransaction' | 'observeTransactions' | 'checkConfirmations' | 'verifyRegistration'
>;

type Timed = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/**
 * Longest single observeTransactions call. The activity's start-to-close is 60 s, so a
 * stall time of a minute or more (sensible on Ethereum) must be waited out in slices.
 */
const OBSERVE_SLICE_MS = 20_000;

export interface RegistrationSenderOptions {
  chain: ChainActivities;
  status: UpdateStatus;
  chainId: number;
  appId: string;
  composeHash: string;
  from: string;
  /** How long a transaction may sit unmined before it is replaced with higher fees. */
  stallMs: number;
  timed: Timed;
  maxReplacements?: number;
}

/**
 * Sends addComposeHash exactly once. State lives here (and so in the workflow), so
 * run() can be called again after a reorg and resumes from the transactions already signed.
 */
export class RegistrationSender {
  /** Transactions signed for the current nonce: the original and its replacements. */
  private sameNonce: SignedTx[] = [];
  /** Workflow time the latest signing started waiting to be mined; unset: starts at the next broadcast. */
  private waitingSince: number | undefined;

  constructor(private readonly o: RegistrationSenderOptions) {}

  async run(): Promise<MinedTx> {
    const { chain, chainId, timed } = this.o;
    if (this.sameNonce.length === 0) await this.sign();
    // Called again after a reorg: the rebroadcast gets a full stall time of its own.
    this.waitingSince = undefined;
    for (;;) {
      const latest = this.sameNonce[this.sameNonce.length - 1]!;
      this.waitingSince ??= Date.now();
      const stallLeft = Math.max(0, this.waitingSince + this.o.stallMs - Date.now());
      const sent = await timed('broadcastTransaction', () => chain.broadcastTransaction({ chainId, raw: latest.raw }));
      if (sent.result === 'underpriced') {
        // The base fee rose past our cap; waiting cannot help, only higher fees can.
        await this.sign(latest);
        continue;
      }
      const seen = await timed('observeTransactions', () =>
        chain.observeTransactions({
          chainId,
          from: this.o.from,
          nonce: latest.nonce,
          hashes: this.sameNonce.map((t) => t.hash),
          maxWaitMs: Math.min(stallLeft, OBSERVE_SLICE_MS),
        }),
      );
      switch (seen.state) {
        case 'mined':
          if (!seen.success) {
            // The nonce is spent and nothing was registered: a later run() signs anew.
            this.sameNonce = [];
            throw ApplicationFailure.nonRetryable(
              `registration transaction ${seen.hash} reverted in block ${seen.blockNumber} ` +
                '(out of gas, or the signer no longer owns the app)',
              REGISTRATION_REVERTED,
            );
          }
          return { hash: seen.hash, blockNumber: seen.blockNumber, blockHash: seen.blockHash };
        case 'pending':
          // Not stalled until a slice has waited out the rest of the stall time.
          if (stallLeft > OBSERVE_SLICE_MS) break;
          if (this.sameNonce.length <= (this.o.maxReplacements ?? 5)) await this.sign(latest);
          // Out of replacements: wait a whole stall time again rather than poll in a tight loop.
          else this.waitingSince = undefined;
          break;
        case 'dropped':
          // Rebroadcast the same bytes on the next turn, with a fresh stall time.
          this.waitingSince = undefined;
          break;
        case 'nonce_consumed':
          // Another transaction of this key took the nonce: ours can never be mined.
          this.sameNonce = [];
          await this.sign();
          break;
      }
    }
  }

  private async sign(replacing?: SignedTx): Promise<void> {
    const { chain, chainId, appId, composeHash, timed, status } = this.o;
    const signed = await timed('signRegistration', () =>
      chain.signRegistration({
        chainId,
        appId,
        composeHash,
        ...(replacing
          ? {
              nonce: replacing.nonce,
              replacing: { maxFeePerGas: replacing.maxFeePerGas, maxPriorityFeePerGas: replacing.maxPriorityFeePerGas, gas: replacing.gas },
            }
          : {}),
      }),
    );
    this.sameNonce.push(signed);
    this.waitingSince = undefined;
    status.sentTransactions.push({
      hash: signed.hash,
      nonce: signed.nonce,
      maxFeePerGas: signed.maxFeePerGas,
      maxPriorityFeePerGas: signed.maxPriorityFeePerGas,
    });
  }
}
