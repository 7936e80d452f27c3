// The operator's view of a transaction manager, as text (`cli signer status`).
import type { SignerStatus } from './workflows/signer-manager/definitions.ts';

const gwei = (wei: string) => {
  const n = BigInt(wei);
  const whole = n / 1_000_000_000n;
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0').slice(0, 3);
  return `${whole}.${frac}`;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatSignerStatus(s: SignerStatus): string {
  const lines = [
    `signer ${s.signer} on chain ${s.chainId}: next nonce ${s.nextNonce}` +
      (s.accountNonce !== undefined ? `, account nonce ${s.accountNonce}` : '') +
      (s.head !== undefined ? ` at block ${s.head}` : ''),
    `  ${s.pending.length} nonce(s) in flight` +
      (s.oldestPendingAgeMs !== undefined ? `, oldest unmined for ${seconds(s.oldestPendingAgeMs)}` : ''),
    `  signed ${s.stats.signed}, replaced ${s.stats.replaced}, rebroadcast ${s.stats.rebroadcast}, gaps filled ${s.stats.filled}, ` +
      `mined ${s.stats.mined}, reorgs ${s.stats.reorgs}; history ${s.historyLength} events, run ${s.continuedAsNew + 1}`,
  ];
  for (const p of s.pending) {
    const latest = p.txs.at(-1);
    lines.push(
      `  nonce ${p.nonce} ${p.state}${p.depth !== undefined ? ` (depth ${p.depth})` : ''} ${p.key ?? 'gap fill'}` +
        (latest ? ` ${latest.hash} max fee ${gwei(latest.maxFeePerGas)} gwei, tip ${gwei(latest.maxPriorityFeePerGas)} gwei` : '') +
        (p.txs.length > 1 ? ` (${p.txs.length} signings)` : '') +
        (p.state === 'pending' ? `, ${seconds(p.ageMs)} old` : '') +
        (p.note ? `\n    ${p.note}` : ''),
    );
  }
  const waiting = s.registrations.filter((r) => r.state !== 'done');
  for (const r of waiting) lines.push(`  registration ${r.key}: ${r.state}, ${r.subscribers} waiting${r.reason ? ` (${r.reason})` : ''}`);
  if (s.lastError) lines.push(`  last error: ${s.lastError}`);
  return lines.join('\n');
}
