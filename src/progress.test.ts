import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownerProposalLines } from './progress.ts';

const waiting = {
  waitingFor:
    'the signer 0xabc is not the owner (0xdef) of app 0x1234567890abcdef1234567890abcdef12345678: the owner must call addComposeHash',
  chainId: 8453,
  appId: '0x1234567890abcdef1234567890abcdef12345678',
  composeHash: 'ab'.repeat(32),
};

test("a wait for the app's owner shows the exact transaction to propose", () => {
  const lines = ownerProposalLines(waiting);
  assert.equal(lines[0], "the owner's transaction:");
  assert.ok(lines.includes('  chain: 8453'));
  assert.ok(lines.includes('  to:    0x1234567890AbcdEF1234567890aBcdef12345678'));
  assert.ok(lines.includes('  value: 0'));
  assert.ok(lines.includes(`  data:  0xdfc77223${'ab'.repeat(32)}`), lines.join('\n'));
});

test('other waits, or a status without the chain facts, show nothing', () => {
  assert.deepEqual(ownerProposalLines({ ...waiting, waitingFor: 'compose hash differs; retry' }), []);
  assert.deepEqual(ownerProposalLines({ ...waiting, chainId: undefined }), []);
  assert.deepEqual(ownerProposalLines({ ...waiting, composeHash: 'not-a-hash' }), []);
});
