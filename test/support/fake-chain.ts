// A small in-memory chain with one signer, standing behind the manager's activities in
// its fast tests: a pool keyed by nonce, blocks mined on demand in nonce order, receipts,
// and the faults the manager must survive (drops, underpricing, a nonce taken, reorgs).
import type { SignedTx } from '../../src/activities/types.ts';
import type { createActivities } from '../../src/activities/index.ts';
import { registrationKey } from '../../src/workflows/signer-manager/definitions.ts';

type Activities = ReturnType<typeof createActivities>;
type ManagerActivities = Pick<
  Activities,
  'signerSettings' | 'signNewRegistrations' | 'signReplacement' | 'broadcastTransactions' | 'observeSignerTransactions'
>;

export const SIGNER = '0x00000000000000000000000000000000000000aa';

export interface FakeTx extends SignedTx {
  kind: 'register' | 'self';
  key?: string;
}

export class FakeChain {
  head = 100;
  accountNonce = 0;
  baseFee = 10n;
  /** Mine a block each time the manager looks. */
  automine = true;
  /** Accept the next N broadcasts but keep them out of the pool (a node that forgets). */
  forgetBroadcasts = 0;
  /** A transaction of someone else holds this many nonces above ours in the node's pending count. */
  strayPending = 0;
  /** Called after new registrations are signed, before they are broadcast (a base fee that jumps). */
  afterNewSignings: (() => void) | undefined;
  confirmations = 2;
  stallMs = 1000;
  maxFeePerGasWei: string | undefined;
  pool = new Map<number, FakeTx>();
  receipts = new Map<string, { nonce: number; blockNumber: number; blockHash: string }>();
  allowed = new Set<string>();
  signed: FakeTx[] = [];
  broadcasts: string[] = [];
  private counter = 0;
  private epoch = 0;

  blockHash(n: number): string {
    return `0x${(n * 1000 + this.epoch).toString(16).padStart(64, '0')}`;
  }

  /** One block: our pooled transactions go in, in nonce order, as far as no gap stops them. */
  mine(): void {
    this.head++;
    for (let tx = this.pool.get(this.accountNonce); tx && BigInt(tx.maxFeePerGas) >= this.baseFee; tx = this.pool.get(this.accountNonce)) {
      this.receipts.set(tx.hash, { nonce: tx.nonce, blockNumber: this.head, blockHash: this.blockHash(this.head) });
      if (tx.kind === 'register' && tx.key) this.allowed.add(tx.key);
      this.pool.delete(tx.nonce);
      this.accountNonce++;
    }
  }

  /** Someone else's transaction of the same key is mined at our next nonce. */
  takeNextNonce(): void {
    this.pool.delete(this.accountNonce);
    this.accountNonce++;
    this.head++;
  }

  /** The last `depth` blocks are replaced by empty ones; their transactions vanish (anvil's way). */
  reorg(depth: number): void {
    this.epoch++;
    const from = this.head - depth + 1;
    for (const [hash, r] of [...this.receipts]) {
      if (r.blockNumber >= from) {
        this.receipts.delete(hash);
        this.accountNonce = Math.min(this.accountNonce, r.nonce);
        const tx = this.signed.find((t) => t.hash === hash);
        if (tx?.key) this.allowed.delete(tx.key);
      }
    }
  }

  private sign(nonce: number, kind: FakeTx['kind'], fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }, key?: string): FakeTx {
    const hash = `0x${(++this.counter).toString(16).padStart(64, '0')}`;
    const tx: FakeTx = {
      hash,
      raw: `0x02${hash.slice(2)}`,
      nonce,
      from: SIGNER,
      to: SIGNER,
      chainId: 31337,
      gas: kind === 'register' ? '60000' : '21000',
      maxFeePerGas: fees.maxFeePerGas.toString(),
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas.toString(),
      kind,
      ...(key ? { key } : {}),
    };
    this.signed.push(tx);
    return tx;
  }

  private suggested() {
    return { maxFeePerGas: this.baseFee * 2n + 1n, maxPriorityFeePerGas: 1n };
  }

  activities(): ManagerActivities {
    const up10 = (v: string) => (BigInt(v) * 110n + 99n) / 100n;
    const max = (a: bigint, b: bigint) => (a > b ? a : b);
    return {
      signerSettings: async (a) => ({
        chainId: a.chainId,
        confirmations: this.confirmations,
        stallMs: this.stallMs,
        ...(this.maxFeePerGasWei ? { maxFeePerGasWei: this.maxFeePerGasWei } : {}),
      }),
      signNewRegistrations: async (a) => {
        let top = this.accountNonce;
        while (this.pool.has(top)) top++;
        let nonce = Math.max(a.nextNonce, top + this.strayPending);
        const results = a.registrations.map((r) => {
          const key = registrationKey(r.appId, r.composeHash);
          if (this.allowed.has(key)) return { ...r, outcome: 'already_allowed' as const };
          return { ...r, outcome: 'signed' as const, signed: this.sign(nonce++, 'register', this.suggested(), key) };
        });
        this.afterNewSignings?.();
        return { results, nextNonce: nonce };
      },
      signReplacement: async (a) => {
        const s = this.suggested();
        const fees = a.previous
          ? {
              maxFeePerGas: max(up10(a.previous.maxFeePerGas), s.maxFeePerGas),
              maxPriorityFeePerGas: max(up10(a.previous.maxPriorityFeePerGas), s.maxPriorityFeePerGas),
            }
          : { maxFeePerGas: up10(s.maxFeePerGas.toString()), maxPriorityFeePerGas: up10(s.maxPriorityFeePerGas.toString()) };
        if (this.maxFeePerGasWei && fees.maxFeePerGas > BigInt(this.maxFeePerGasWei)) {
          return { outcome: 'at_cap' as const, capWei: this.maxFeePerGasWei, wantedWei: fees.maxFeePerGas.toString() };
        }
        const key = a.payload.kind === 'register' ? registrationKey(a.payload.appId, a.payload.composeHash) : undefined;
        return { outcome: 'signed' as const, signed: this.sign(a.nonce, a.payload.kind, fees, key) };
      },
      broadcastTransactions: async (a) =>
        a.raws.map((raw) => {
          this.broadcasts.push(raw);
          const tx = this.signed.find((t) => t.raw === raw)!;
          if (tx.nonce < this.accountNonce || this.receipts.has(tx.hash)) return { result: 'known' as const };
          if (BigInt(tx.maxFeePerGas) < this.baseFee) return { result: 'underpriced' as const };
          if (this.forgetBroadcasts > 0) {
            this.forgetBroadcasts--;
            return { result: 'sent' as const };
          }
          const there = this.pool.get(tx.nonce);
          if (there && there.hash !== tx.hash && BigInt(tx.maxFeePerGas) < (BigInt(there.maxFeePerGas) * 110n) / 100n)
            return { result: 'known' as const };
          this.pool.set(tx.nonce, tx);
          return { result: 'sent' as const };
        }),
      observeSignerTransactions: async (a) => {
        if (this.automine) this.mine();
        // A node with no new block answers after the watcher's slice, not at once.
        else await new Promise((resolve) => setTimeout(resolve, Math.min(a.maxWaitMs, 200)));
        const pending = a.pending.map((p) => {
          const mined = p.hashes.find((h) => this.receipts.has(h));
          if (mined) {
            const r = this.receipts.get(mined)!;
            return {
              nonce: p.nonce,
              state: 'mined' as const,
              hash: mined,
              blockNumber: r.blockNumber,
              blockHash: r.blockHash,
              success: true,
            };
          }
          if (this.accountNonce > p.nonce) return { nonce: p.nonce, state: 'consumed' as const };
          const pooled = p.hashes.filter((h) => this.pool.get(p.nonce)?.hash === h);
          return pooled.length > 0
            ? { nonce: p.nonce, state: 'pending' as const, pendingHashes: pooled }
            : { nonce: p.nonce, state: 'dropped' as const };
        });
        const mined = a.mined.map((m) => {
          const r = this.receipts.get(m.hash);
          if (!r) return { nonce: m.nonce, hash: m.hash, state: 'reorged' as const, reason: 'receipt-missing' as const };
          if (r.blockHash !== m.blockHash) {
            return {
              nonce: m.nonce,
              hash: m.hash,
              state: 'reorged' as const,
              reason: 'moved' as const,
              current: { blockNumber: r.blockNumber, blockHash: r.blockHash, status: 'success' as const },
            };
          }
          const depth = this.head - r.blockNumber + 1;
          return {
            nonce: m.nonce,
            hash: m.hash,
            state: depth >= m.confirmations ? ('confirmed' as const) : ('pending' as const),
            confirmations: depth,
            latestBlock: this.head,
          };
        });
        return { head: this.head, accountNonce: this.accountNonce, pending, mined };
      },
    };
  }
}
