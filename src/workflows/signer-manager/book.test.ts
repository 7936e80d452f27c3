// The manager's books deciding which answers are owed when: intermediate answers are held
// while their state is young, final ones never are, and a late answer names the signing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SignedTx, SignerObservationResult } from '../../activities/types.ts';
import { emptySignerState, SignerBook } from './book.ts';

const APP = '0x00000000000000000000000000000000000000a1';
const HASH = '11'.repeat(32);
const QUIET = 5_000;

function signed(nonce: number, hash = `0x${'ab'.repeat(32)}`): SignedTx {
  return {
    hash,
    raw: `0x02${hash.slice(2)}`,
    nonce,
    from: APP,
    to: APP,
    chainId: 31337,
    gas: '60000',
    maxFeePerGas: '21',
    maxPriorityFeePerGas: '1',
  };
}

/** A book with one asker whose registration was signed at time 1000. */
function signedBook(): { book: SignerBook; tx: SignedTx } {
  const book = new SignerBook(emptySignerState(), 2);
  book.request({ requestId: 'r1', appId: APP, composeHash: HASH, confirmations: 2, notifyWorkflowId: 'w1' }, 1_000);
  const tx = signed(0);
  book.applyNewSigning(book.queued()[0]!, tx, 1_000);
  return { book, tx };
}

function observe(book: SignerBook, obs: Omit<SignerObservationResult, 'accountNonce'>, now: number): void {
  book.applyObservation({ accountNonce: 1, ...obs } as SignerObservationResult, book.observeInput(), now);
}

test('without quiet every owed answer is returned at once, as before', () => {
  const { book, tx } = signedBook();
  const [n, ...rest] = book.notices();
  assert.equal(rest.length, 0);
  assert.equal(n!.notice.state, 'sent');
  assert.deepEqual(n!.notice.state === 'sent' && n!.notice.tx, { hash: tx.hash, nonce: 0, maxFeePerGas: '21', maxPriorityFeePerGas: '1' });
});

test('a young sent is held until it has lasted the quiet time, and nextNoticeDue says when', () => {
  const { book, tx } = signedBook();
  assert.deepEqual(book.notices({ now: 1_000 + QUIET - 1, ms: QUIET }), []);
  assert.equal(book.nextNoticeDue(QUIET), 1_000 + QUIET);
  const due = book.notices({ now: 1_000 + QUIET, ms: QUIET });
  assert.equal(due.length, 1);
  assert.equal(due[0]!.notice.state, 'sent');
  book.markTold(due[0]!, true);
  assert.deepEqual(book.notices({ now: 99_000, ms: QUIET }), [], 'told once');
  assert.equal(book.nextNoticeDue(QUIET), Infinity);
  // Mined after the sent was told: the mined answer does not repeat the signing.
  observe(
    book,
    { head: 10, pending: [{ nonce: 0, state: 'mined', hash: tx.hash, blockNumber: 10, blockHash: '0x10', success: true }], mined: [] },
    20_000,
  );
  const mined = book.notices({ now: 20_000 + QUIET, ms: QUIET });
  assert.equal(mined[0]?.notice.state, 'mined');
  assert.equal('sent' in mined[0]!.notice, false);
});

test('a sent superseded by mined and confirmed before it was due is never sent; confirmed carries the signing', () => {
  const { book, tx } = signedBook();
  observe(
    book,
    { head: 10, pending: [{ nonce: 0, state: 'mined', hash: tx.hash, blockNumber: 10, blockHash: '0x10', success: true }], mined: [] },
    2_000,
  );
  assert.deepEqual(book.notices({ now: 3_000, ms: QUIET }), [], 'mined is young too');
  assert.equal(book.nextNoticeDue(QUIET), 2_000 + QUIET, 'measured from the mining');
  observe(
    book,
    { head: 11, pending: [], mined: [{ nonce: 0, hash: tx.hash, state: 'confirmed', confirmations: 2, latestBlock: 11 }] },
    3_500,
  );
  const [n, ...rest] = book.notices({ now: 3_500, ms: QUIET });
  assert.equal(rest.length, 0);
  assert.equal(n!.final, true);
  assert.equal(n!.notice.state, 'confirmed');
  assert.deepEqual(n!.notice.state === 'confirmed' && n!.notice.sent, {
    hash: tx.hash,
    nonce: 0,
    maxFeePerGas: '21',
    maxPriorityFeePerGas: '1',
  });
  // Without quiet the same confirmed answer keeps its old shape.
  assert.equal('sent' in book.notices()[0]!.notice, false);
});

test('failures are never held', () => {
  const book = new SignerBook(emptySignerState(), 2);
  book.request({ requestId: 'r1', appId: APP, composeHash: HASH, confirmations: 2, notifyWorkflowId: 'w1' }, 1_000);
  book.fail(book.queued()[0]!, 'no funds', 1_000);
  const [n] = book.notices({ now: 1_000, ms: QUIET });
  assert.equal(n?.notice.state, 'failed');
  assert.equal(book.nextNoticeDue(QUIET), Infinity);
});
