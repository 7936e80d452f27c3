// The manager's books: who asked for what, which nonce carries it, every signing, what
// the chain last said. Pure and deterministic (time is passed in), so the manager
// workflow only moves data between these methods and its activities.
import type { MinedTx, SignedTx, SignerObservationResult } from '../../activities/types.ts';
import {
  registrationKey,
  type NonceSlot,
  type Registration,
  type RegistrationNotice,
  type RegistrationRequest,
  type SentTx,
  type SignedRecord,
  type SignerState,
  type SignerStatus,
  type Subscriber,
  type WithdrawRequest,
} from './definitions.ts';

/** Done registrations remembered for joining late requests; the oldest are forgotten first. */
const REMEMBERED_DONE = 1000;
/** Nonces looked at for gaps below our highest pending one. */
const GAP_WINDOW = 64;

export function emptySignerState(): SignerState {
  return {
    nextNonce: 0,
    registrations: [],
    slots: [],
    gaps: {},
    stats: { signed: 0, replaced: 0, rebroadcast: 0, filled: 0, mined: 0, reorgs: 0 },
    generation: 0,
  };
}

export interface Notice {
  workflowId: string;
  requestId: string;
  notice: RegistrationNotice;
  final: boolean;
}

export interface Replacement {
  nonce: number;
  payload: { kind: 'register'; appId: string; composeHash: string } | { kind: 'self' };
  previous: { maxFeePerGas: string; maxPriorityFeePerGas: string; gas: string };
}

export class SignerBook {
  constructor(
    readonly state: SignerState,
    /** Depth for watching a registration nobody waits on any more. */
    private defaultConfirmations = 1,
  ) {}

  setDefaultConfirmations(n: number): void {
    this.defaultConfirmations = n;
  }

  // ---- requests ----

  request(r: RegistrationRequest, now: number): void {
    const key = registrationKey(r.appId, r.composeHash);
    let reg = this.reg(key);
    if (reg && (reg.state === 'failed' || (reg.tx && r.notAllowedAtBlock !== undefined && reg.tx.blockNumber <= r.notAllowedAtBlock))) {
      // Failed before, or mined before the asker saw the hash not allowed (it was removed
      // since): register again.
      this.dropSlotOf(reg);
      Object.assign(reg, { state: 'queued', since: now });
      delete reg.tx;
      delete reg.nonce;
      delete reg.reason;
      delete reg.allowedElsewhere;
    }
    if (!reg) {
      reg = {
        key,
        appId: r.appId.toLowerCase(),
        composeHash: r.composeHash.toLowerCase().replace(/^0x/, ''),
        state: 'queued',
        subscribers: [],
        since: now,
      };
      this.state.registrations.push(reg);
    }
    // Asking again resets what the asker was told: the answer is sent again.
    reg.subscribers = reg.subscribers.filter((s) => s.requestId !== r.requestId);
    reg.subscribers.push({ requestId: r.requestId, workflowId: r.notifyWorkflowId, confirmations: r.confirmations });
    const slot = this.slotOf(reg);
    if (slot?.cancelled) {
      // Wanted again while being cancelled: the next replacement registers once more.
      slot.cancelled = false;
    }
    if (reg.state === 'done' && (reg.depth ?? 0) < r.confirmations && reg.tx && reg.nonce !== undefined) {
      // Wants more depth than we watched to: watch again.
      reg.state = 'mined';
      this.state.slots.push({ nonce: reg.nonce, key, txs: [], state: 'mined', mined: { ...reg.tx, success: true }, sentAt: now });
    }
  }

  withdraw(w: WithdrawRequest, now: number): void {
    const reg = this.reg(registrationKey(w.appId, w.composeHash));
    if (!reg) return;
    reg.subscribers = reg.subscribers.filter((s) => s.requestId !== w.requestId);
    if (reg.subscribers.length > 0) return;
    if (reg.state === 'queued' || reg.state === 'failed') {
      this.removeReg(reg);
    } else if (reg.state === 'sending') {
      const slot = this.slotOf(reg);
      if (slot) {
        // Nothing new for it after the withdrawal: its nonce is taken back by a self-send.
        slot.cancelled = true;
        slot.replaceNow = true;
      }
    }
    reg.since = now;
  }

  // ---- signing ----

  queued(): Registration[] {
    return this.state.registrations.filter((r) => r.state === 'queued' && r.subscribers.length > 0);
  }

  applyNewSigning(reg: Registration, signed: SignedTx, now: number): void {
    reg.state = 'sending';
    reg.nonce = signed.nonce;
    reg.since = now;
    this.state.slots.push({ nonce: signed.nonce, key: reg.key, txs: [record(signed, 'register')], state: 'pending', sentAt: now });
    this.state.nextNonce = Math.max(this.state.nextNonce, signed.nonce + 1);
    this.state.stats.signed++;
  }

  /**
   * Signed for a request withdrawn while the signing ran: the bytes are never broadcast, and
   * the nonce they took is handed back at once with a self-send.
   */
  applyWithdrawnSigning(signed: SignedTx, now: number): void {
    this.state.slots.push({
      nonce: signed.nonce,
      txs: [record(signed, 'register')],
      state: 'pending',
      sentAt: now,
      cancelled: true,
      replaceNow: true,
    });
    this.state.nextNonce = Math.max(this.state.nextNonce, signed.nonce + 1);
    this.state.stats.signed++;
  }

  markAllowedElsewhere(reg: Registration, now: number): void {
    reg.state = 'failed';
    reg.reason = 'already allowed on chain';
    reg.since = now;
    for (const s of reg.subscribers) delete s.told;
    reg.allowedElsewhere = true;
  }

  fail(reg: Registration, reason: string, now: number): void {
    reg.state = 'failed';
    reg.reason = reason;
    reg.since = now;
  }

  /** Slots whose latest signing should be superseded now. */
  dueReplacements(now: number, stallMs: number): Replacement[] {
    const due: Replacement[] = [];
    for (const slot of this.state.slots) {
      if (slot.state !== 'pending' || slot.txs.length === 0) continue;
      const latest = slot.txs[slot.txs.length - 1]!;
      const stalled = now - slot.sentAt >= stallMs;
      const wantsCancel = slot.cancelled === true && latest.kind !== 'self';
      if (slot.atCap && !stalled) continue;
      if (!(stalled || slot.replaceNow || wantsCancel)) continue;
      const reg = slot.key ? this.reg(slot.key) : undefined;
      const payload =
        reg && !slot.cancelled
          ? ({ kind: 'register', appId: reg.appId, composeHash: reg.composeHash } as const)
          : ({ kind: 'self' } as const);
      due.push({
        nonce: slot.nonce,
        payload,
        previous: { maxFeePerGas: latest.maxFeePerGas, maxPriorityFeePerGas: latest.maxPriorityFeePerGas, gas: latest.gas },
      });
    }
    return due;
  }

  applyReplacement(nonce: number, signed: SignedTx, kind: SignedRecord['kind'], now: number): void {
    const slot = this.slot(nonce);
    if (!slot) return;
    slot.txs.push(record(signed, kind));
    slot.sentAt = now;
    delete slot.atCap;
    delete slot.replaceNow;
    this.state.stats.replaced++;
  }

  applyAtCap(nonce: number, cap: { capWei: string; wantedWei: string }, now: number): void {
    const slot = this.slot(nonce);
    if (!slot) return;
    slot.atCap = cap;
    slot.sentAt = now;
    delete slot.replaceNow;
  }

  /** Nonces below our highest pending one that nothing of ours holds, unheld for graceMs. */
  dueFills(now: number, graceMs: number): number[] {
    return Object.entries(this.state.gaps)
      .filter(([, since]) => now - since >= graceMs)
      .map(([n]) => Number(n));
  }

  applyFill(signed: SignedTx, now: number): void {
    delete this.state.gaps[String(signed.nonce)];
    this.state.slots.push({ nonce: signed.nonce, txs: [record(signed, 'self')], state: 'pending', sentAt: now });
    this.state.stats.filled++;
  }

  /** A fill refused at the cap: look again after another grace period. */
  postponeFill(nonce: number, now: number): void {
    if (this.state.gaps[String(nonce)] !== undefined) this.state.gaps[String(nonce)] = now;
  }

  applyBroadcast(nonce: number, outcome: { result: 'sent' | 'known' | 'underpriced' } | { result: 'rejected'; reason: string }): void {
    const slot = this.slot(nonce);
    if (!slot) return;
    if (outcome.result === 'rejected') {
      slot.refused = outcome.reason;
      this.state.lastError = `nonce ${nonce}: the node refused the transaction: ${outcome.reason}`;
      return;
    }
    delete slot.refused;
    // Below the base fee the node will not even pool it: only higher fees help.
    if (outcome.result === 'underpriced') slot.replaceNow = true;
  }

  // ---- watching ----

  /** What the watcher should look at; `hashCounts` lets a late answer be told from a fresh one. */
  observeInput(): {
    pending: { nonce: number; hashes: string[] }[];
    mined: { nonce: number; hash: string; blockNumber: number; blockHash: string; confirmations: number }[];
  } {
    const pending = this.state.slots
      .filter((s) => s.state === 'pending' && s.txs.length > 0)
      .map((s) => ({ nonce: s.nonce, hashes: s.txs.map((t) => t.hash) }));
    const mined = this.state.slots
      .filter((s) => s.state === 'mined' && s.mined)
      .map((s) => ({
        nonce: s.nonce,
        hash: s.mined!.hash,
        blockNumber: s.mined!.blockNumber,
        blockHash: s.mined!.blockHash,
        confirmations: this.depthWanted(s),
      }));
    return { pending, mined };
  }

  /**
   * Folds one look at the chain into the books. `asked` is what the look was asked about:
   * a slot signed again since then is judged on its next look, not on this one.
   * Returns the nonces whose latest bytes should be broadcast again (dropped by the node).
   */
  applyObservation(obs: SignerObservationResult, asked: ReturnType<SignerBook['observeInput']>, now: number): number[] {
    const s = this.state;
    s.head = obs.head;
    s.accountNonce = obs.accountNonce;
    const rebroadcast: number[] = [];
    for (const p of obs.pending) {
      const slot = this.slot(p.nonce);
      const askedHashes = asked.pending.find((a) => a.nonce === p.nonce)?.hashes.length;
      if (!slot || slot.state !== 'pending') continue;
      const fresh = askedHashes === slot.txs.length;
      switch (p.state) {
        case 'mined': {
          const tx = slot.txs.find((t) => t.hash.toLowerCase() === p.hash.toLowerCase());
          this.onMined(slot, tx?.kind ?? 'register', { hash: p.hash, blockNumber: p.blockNumber, blockHash: p.blockHash }, p.success, now);
          break;
        }
        case 'consumed':
          if (fresh) this.onConsumed(slot, now);
          break;
        case 'dropped':
          if (fresh) rebroadcast.push(slot.nonce);
          break;
        case 'pending':
          break;
      }
    }
    for (const m of obs.mined) {
      const slot = this.slot(m.nonce);
      if (!slot || slot.state !== 'mined' || slot.mined?.hash.toLowerCase() !== m.hash.toLowerCase()) continue;
      const reg = slot.key ? this.reg(slot.key) : undefined;
      if (m.state === 'reorged') {
        s.stats.reorgs++;
        if (m.reason === 'moved' && m.current) {
          // Still mined, in another block: follow it there.
          slot.mined = {
            hash: slot.mined.hash,
            blockNumber: m.current.blockNumber,
            blockHash: m.current.blockHash,
            success: m.current.status === 'success',
          };
          delete slot.depth;
          if (reg) reg.tx = { hash: slot.mined.hash, blockNumber: m.current.blockNumber, blockHash: m.current.blockHash };
          continue;
        }
        // Out of the chain: back to watching the nonce; dropped bytes are sent again as they are.
        slot.state = 'pending';
        delete slot.mined;
        delete slot.depth;
        slot.sentAt = now;
        if (reg) {
          reg.state = 'sending';
          delete reg.tx;
        }
        if (slot.txs.length === 0) {
          // Watched again from memory, with no bytes to resend: register anew.
          this.removeSlot(slot);
          if (reg) this.requeue(reg, now);
        }
        continue;
      }
      slot.depth = m.confirmations;
    }
    this.findGaps(now);
    return rebroadcast;
  }

  private onMined(slot: NonceSlot, kind: SignedRecord['kind'], tx: MinedTx, success: boolean, now: number): void {
    this.state.stats.mined++;
    const reg = slot.key ? this.reg(slot.key) : undefined;
    if (kind === 'self' || !reg) {
      // A fill or a cancel took the nonce. A registration still wanted goes to a new nonce.
      this.removeSlot(slot);
      if (reg) this.requeue(reg, now);
      return;
    }
    if (!success) {
      this.removeSlot(slot);
      this.fail(
        reg,
        `registration transaction ${tx.hash} reverted in block ${tx.blockNumber} (out of gas, or the key no longer owns the app)`,
        now,
      );
      return;
    }
    slot.state = 'mined';
    slot.mined = { ...tx, success };
    reg.state = 'mined';
    reg.tx = tx;
    reg.since = now;
  }

  private onConsumed(slot: NonceSlot, now: number): void {
    this.state.lastError = `nonce ${slot.nonce} was taken by another transaction of this key`;
    this.removeSlot(slot);
    const reg = slot.key ? this.reg(slot.key) : undefined;
    if (reg) this.requeue(reg, now);
  }

  private requeue(reg: Registration, now: number): void {
    if (reg.subscribers.length === 0) {
      this.removeReg(reg);
      return;
    }
    reg.state = 'queued';
    reg.since = now;
    delete reg.nonce;
    delete reg.tx;
  }

  private findGaps(now: number): void {
    const s = this.state;
    const accountNonce = s.accountNonce ?? 0;
    const pendingNonces = s.slots.filter((x) => x.state === 'pending').map((x) => x.nonce);
    const top = pendingNonces.length > 0 ? Math.max(...pendingNonces) : accountNonce;
    const held = new Set(s.slots.map((x) => x.nonce));
    const gaps: Record<string, number> = {};
    for (let n = accountNonce; n < top && n < accountNonce + GAP_WINDOW; n++) {
      if (!held.has(n)) gaps[String(n)] = s.gaps[String(n)] ?? now;
    }
    s.gaps = gaps;
  }

  // ---- answers ----

  /**
   * Answers owed to askers; call markTold after each is delivered. With `quiet.ms` > 0 an
   * intermediate answer (sent, mined) is owed only once its state has lasted that long at
   * `quiet.now`, and a later answer names the signing the asker was never told of.
   */
  notices(quiet?: { now: number; ms: number }): Notice[] {
    return this.owed(quiet).filter((n) => n.final || !quiet || n.dueAt <= quiet.now);
  }

  /** Workflow time an answer held back by `quietMs` falls due (Infinity: none is held). */
  nextNoticeDue(quietMs: number): number {
    return Math.min(Infinity, ...this.owed({ ms: quietMs }).map((n) => (n.final ? Infinity : n.dueAt)));
  }

  private owed(quiet?: { ms: number }): (Notice & { dueAt: number })[] {
    const out: (Notice & { dueAt: number })[] = [];
    for (const reg of this.state.registrations) {
      const base = { appId: reg.appId, composeHash: reg.composeHash };
      const slot = this.slotOf(reg);
      for (const sub of reg.subscribers) {
        const n = this.noticeFor(reg, slot, sub, base, quiet !== undefined && quiet.ms > 0);
        // reg.since is when the registration entered its current state (first signed, or mined).
        if (n) out.push({ workflowId: sub.workflowId, requestId: sub.requestId, ...n, dueAt: reg.since + (quiet?.ms ?? 0) });
      }
    }
    return out;
  }

  private noticeFor(
    reg: Registration,
    slot: NonceSlot | undefined,
    sub: Subscriber,
    base: { appId: string; composeHash: string },
    withSent: boolean,
  ): Omit<Notice, 'workflowId' | 'requestId'> | undefined {
    if (reg.state === 'failed') {
      if (sub.told === 'failed' || sub.told === 'already_allowed') return undefined;
      if (reg.allowedElsewhere) return { notice: { ...base, state: 'already_allowed' }, final: true };
      return { notice: { ...base, state: 'failed', reason: reg.reason ?? 'failed' }, final: true };
    }
    const untold = (hash: string) => {
      const sent = withSent && sub.toldHash !== hash ? this.sentTx(reg, slot, hash) : undefined;
      return sent ? { sent } : {};
    };
    const depth = reg.state === 'done' ? reg.depth : slot?.state === 'mined' ? slot.depth : undefined;
    if (reg.tx && depth !== undefined && depth >= sub.confirmations) {
      return { notice: { ...base, state: 'confirmed', tx: reg.tx, confirmations: depth, ...untold(reg.tx.hash) }, final: true };
    }
    if (reg.state === 'mined' && reg.tx && sub.told !== 'mined')
      return { notice: { ...base, state: 'mined', tx: reg.tx, ...untold(reg.tx.hash) }, final: false };
    const latest = slot?.state === 'pending' ? slot.txs.filter((t) => t.kind === 'register').at(-1) : undefined;
    const hash = latest?.hash;
    if (hash && sub.toldHash !== hash) {
      return { notice: { ...base, state: 'sent', tx: this.sentTx(reg, slot, hash)! }, final: false };
    }
    return undefined;
  }

  /** What the asker's status shows of one signing: its hash, nonce and fees. */
  private sentTx(reg: Registration, slot: NonceSlot | undefined, hash: string): SentTx | undefined {
    const signed = slot?.txs.find((t) => t.hash === hash);
    if (!signed && slot?.state !== 'pending') return undefined;
    return {
      hash,
      nonce: reg.nonce ?? slot?.nonce ?? -1,
      maxFeePerGas: signed?.maxFeePerGas ?? '0',
      maxPriorityFeePerGas: signed?.maxPriorityFeePerGas ?? '0',
    };
  }

  /** After delivery (or when the asker is gone): final answers end the subscription. */
  markTold(n: Notice, delivered: boolean): void {
    const reg = this.reg(registrationKey(n.notice.appId, n.notice.composeHash));
    const sub = reg?.subscribers.find((s) => s.requestId === n.requestId);
    if (!reg || !sub) return;
    if (!delivered || n.final) {
      reg.subscribers = reg.subscribers.filter((s) => s !== sub);
      return;
    }
    sub.told = n.notice.state;
    if (n.notice.state === 'sent' || n.notice.state === 'mined') sub.toldHash = n.notice.tx.hash;
  }

  /** Registrations deep enough with nobody waiting are done; failures nobody waits on are dropped. */
  retire(now: number): void {
    for (const reg of [...this.state.registrations]) {
      if (reg.subscribers.length > 0) continue;
      if (reg.state === 'failed') this.removeReg(reg);
      const slot = this.slotOf(reg);
      if (reg.state === 'mined' && slot?.state === 'mined' && (slot.depth ?? 0) >= this.depthWanted(slot)) {
        reg.state = 'done';
        reg.depth = slot.depth;
        reg.since = now;
        this.removeSlot(slot);
      }
    }
    const done = this.state.registrations.filter((r) => r.state === 'done').sort((a, b) => a.since - b.since);
    for (const reg of done.slice(0, Math.max(0, done.length - REMEMBERED_DONE))) this.removeReg(reg);
  }

  /** Workflow time of the next stall or gap-fill deadline (Infinity: none). */
  nextDeadline(now: number, stallMs: number): number {
    const stalls = this.state.slots.filter((s) => s.state === 'pending').map((s) => s.sentAt + stallMs);
    const gaps = Object.values(this.state.gaps).map((since) => since + stallMs);
    return Math.min(Infinity, ...stalls, ...gaps, now + 3_600_000);
  }

  /** Nothing in flight and nothing owed: the manager can sleep until asked. */
  idle(): boolean {
    return (
      this.state.slots.length === 0 &&
      this.queued().length === 0 &&
      this.notices().length === 0 &&
      Object.keys(this.state.gaps).length === 0
    );
  }

  status(chainId: number, signer: string, now: number, historyLength: number): SignerStatus {
    const s = this.state;
    const pending = s.slots.map((slot) => ({
      nonce: slot.nonce,
      ...(slot.key ? { key: slot.key } : {}),
      state: slot.state,
      ageMs: now - (slot.txs.length > 0 ? slot.sentAt : now),
      ...(slot.depth !== undefined ? { depth: slot.depth } : {}),
      txs: slot.txs.map((t) => ({
        hash: t.hash,
        kind: t.kind,
        maxFeePerGas: t.maxFeePerGas,
        maxPriorityFeePerGas: t.maxPriorityFeePerGas,
      })),
      ...(noteOf(slot) ? { note: noteOf(slot) } : {}),
    }));
    const ages = s.slots.filter((x) => x.state === 'pending').map((x) => now - x.sentAt);
    return {
      chainId,
      signer,
      ...(s.head !== undefined ? { head: s.head } : {}),
      ...(s.accountNonce !== undefined ? { accountNonce: s.accountNonce } : {}),
      nextNonce: s.nextNonce,
      pending,
      registrations: s.registrations.map((r) => ({
        key: r.key,
        state: r.state,
        ...(r.nonce !== undefined ? { nonce: r.nonce } : {}),
        ...(r.tx ? { tx: r.tx.hash } : {}),
        subscribers: r.subscribers.length,
        ...(r.reason ? { reason: r.reason } : {}),
      })),
      ...(ages.length > 0 ? { oldestPendingAgeMs: Math.max(...ages) } : {}),
      stats: s.stats,
      ...(s.lastError ? { lastError: s.lastError } : {}),
      historyLength,
      continuedAsNew: s.generation,
    };
  }

  // ---- lookups ----

  reg(key: string): Registration | undefined {
    return this.state.registrations.find((r) => r.key === key);
  }

  slot(nonce: number): NonceSlot | undefined {
    return this.state.slots.find((s) => s.nonce === nonce);
  }

  private slotOf(reg: Registration): NonceSlot | undefined {
    return reg.nonce === undefined ? undefined : this.state.slots.find((s) => s.nonce === reg.nonce && s.key === reg.key);
  }

  private depthWanted(slot: NonceSlot): number {
    const reg = slot.key ? this.reg(slot.key) : undefined;
    return Math.max(this.defaultConfirmations, ...(reg?.subscribers.map((s) => s.confirmations) ?? []));
  }

  private dropSlotOf(reg: Registration): void {
    const slot = this.slotOf(reg);
    if (slot && slot.state === 'mined') this.removeSlot(slot);
  }

  private removeSlot(slot: NonceSlot): void {
    this.state.slots = this.state.slots.filter((s) => s !== slot);
  }

  private removeReg(reg: Registration): void {
    this.state.registrations = this.state.registrations.filter((r) => r !== reg);
  }
}

function record(signed: SignedTx, kind: SignedRecord['kind']): SignedRecord {
  return {
    hash: signed.hash,
    raw: signed.raw,
    maxFeePerGas: signed.maxFeePerGas,
    maxPriorityFeePerGas: signed.maxPriorityFeePerGas,
    gas: signed.gas,
    kind,
  };
}

function noteOf(slot: NonceSlot): string | undefined {
  if (slot.atCap)
    return `at the fee cap (${slot.atCap.capWei} wei; a replacement wants ${slot.atCap.wantedWei}): waiting for fees to fall or the cap to rise`;
  if (slot.refused) return `refused by the node: ${slot.refused}`;
  if (slot.cancelled) return 'cancelled: its nonce is taken back by a 0-value self-send';
  if (!slot.key) return 'fills a nonce gap with a 0-value self-send';
  return undefined;
}
