import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeState } from './current-details.ts';
import type { UpdateStatus } from './definitions.ts';

const base: UpdateStatus = {
  cvmId: 'cvm-1',
  phase: 'phase2',
  sentTransactions: [],
  attempts: {},
  timings: { startedAt: '2026-01-01T00:00:00.000Z', apiMs: 0, chainMs: 0, operatorMs: 0, phases: [] },
};

test('a running change says it needs nobody, and how to stop it', () => {
  const md = describeState(base, undefined);
  assert.match(md, /\*\*Phase:\*\* phase2/);
  assert.match(md, /Runs by itself; nothing to do/);
  assert.match(md, /\*\*abort\*\*/);
  assert.doesNotMatch(md, /\*\*retry\*\*/);
});

test('a wait says what for, and lists exactly the actions it takes', () => {
  const md = describeState(
    { ...base, phase: 'awaiting_operator', appId: '0xapp', chainId: 8453, composeHash: 'ab'.repeat(32), lastError: 'boom' },
    { why: 'the owner must register the hash', accepts: ['useTransaction'] },
  );
  assert.match(md, /\*\*Waiting for an operator:\*\* the owner must register the hash/);
  assert.match(md, /\*\*useTransaction\*\* \(Update, `\{"transactionHash": "0x…"\}`\)/);
  assert.match(md, /\*\*abort\*\*/);
  assert.doesNotMatch(md, /\*\*retry\*\*/);
  assert.match(md, /\*\*App:\*\* 0xapp \(chain 8453\)/);
  assert.match(md, /\*\*Last error:\*\* boom/);
});

test('an ended change offers nothing', () => {
  assert.doesNotMatch(describeState({ ...base, phase: 'completed' }, undefined), /You can/);
});
