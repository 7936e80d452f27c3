// The markdown the Temporal UI shows as the update's "current details": where it stands, what
// it waits for, and what an operator can do about it. Ids and hashes only, never a value.
import type { UpdateStatus } from './definitions.ts';
import type { OperatorWait } from './update-tracker.ts';

const ENDED = new Set(['completed', 'failed', 'aborted']);

const HOW: Record<string, string> = {
  retry: '**retry** (Update, no argument): run the step again',
  useTransaction: '**useTransaction** (Update, `{"transactionHash": "0x…"}`): hand over the registration; it is checked on chain first',
  abort: '**abort** (Update, `{"reason": "…"}` or nothing): stop the change; nothing further is sent',
};

export function describeState(s: UpdateStatus, wait: OperatorWait | undefined): string {
  const lines = [`**Phase:** ${s.phase}`, `**CVM:** ${s.cvmId}`];
  if (s.appId) lines.push(`**App:** ${s.appId}${s.chainId !== undefined ? ` (chain ${s.chainId})` : ''}`);
  if (s.composeHash) lines.push(`**Compose hash:** ${s.composeHash}`);
  if (s.transactionHash)
    lines.push(`**Registration:** ${s.transactionHash}${s.blockNumber !== undefined ? ` (block ${s.blockNumber})` : ''}`);
  if (wait) {
    lines.push('', `**Waiting for an operator:** ${wait.why}`, '', 'You can:');
    for (const way of [...wait.accepts, 'abort']) lines.push(`- ${HOW[way]}`);
  } else if (!ENDED.has(s.phase)) {
    lines.push('', 'Runs by itself; nothing to do. You can:', `- ${HOW.abort}`);
  }
  if (s.lastError) lines.push('', `**Last error:** ${s.lastError}`);
  return lines.join('\n');
}
