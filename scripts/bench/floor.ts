// The floor of one on-chain update: what no client can beat on this stack. The wait for the
// next block after phase 1, the remaining confirmation blocks, the simulator's apply delay, and
// the API round trips the flow makes, each measured here.
import { PhalaCloudClient } from '../../src/phala/api-client.ts';
import { encryptEnvVars } from '../../src/phala/env-crypto.ts';
import { loadPhalaConfig } from '../../src/config.ts';
import type { SimCvmSummary } from '../../src/simulator/admin-client.ts';
import type { BlockWatcher } from './chain.ts';
import { median } from './stats.ts';

/** Median round trip of each API call the service makes in one on-chain update, in ms. */
export interface RoundTrips {
  /** Before the registration can be sent: GET /cvms/{id}, GET /kms, GET pubkey, PATCH phase 1, GET compose_file. */
  beforeRegistrationMs: number;
  /** PATCH phase 2 (answered 467 here: the simulator checks the chain the same way). */
  phase2Ms: number;
  /** The one GET …/operations that sees the apply. */
  applyPollMs: number;
  samples: number;
}

/** Times each call of the flow `samples` times on a CVM that needs a registration (no transaction is sent). */
export async function measureRoundTrips(env: Record<string, string>, cvm: SimCvmSummary, samples = 5): Promise<RoundTrips> {
  const api = new PhalaCloudClient(loadPhalaConfig(env));
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn().catch(() => {});
    return performance.now() - t;
  };
  const keys = [...cvm.allowedEnvs, 'FLOOR_PROBE'];
  const rows: number[][] = [];
  for (let i = 0; i < samples; i++) {
    let kmsSlug = '';
    let publicKey = '';
    let composeHash = '';
    const row = [
      await timed(() => api.getCvm(cvm.id)),
      await timed(async () => {
        const list = await api.listKms({ isOnchain: true });
        kmsSlug = list.items[0]?.slug ?? list.items[0]?.id ?? '';
      }),
      await timed(async () => (publicKey = (await api.getAppEnvEncryptPubkey(kmsSlug, cvm.appId)).public_key)),
    ];
    const encrypted = await encryptEnvVars(
      keys.map((key) => ({ key, value: 'probe' })),
      publicKey,
    );
    row.push(
      await timed(async () => {
        const r = await api.updateCvmEnvs({ id: cvm.id, encrypted_env: encrypted, env_keys: keys });
        if (r.status === 'precondition_required') composeHash = r.compose_hash;
      }),
      await timed(() => api.getComposeFile(cvm.id)),
      await timed(() =>
        api.updateCvmEnvs({
          id: cvm.id,
          encrypted_env: encrypted,
          env_keys: keys,
          compose_hash: composeHash,
          transaction_hash: `0x${'ab'.repeat(32)}`,
        }),
      ),
      await timed(() => api.getCvmOperations(cvm.id, { limit: 20 })),
    );
    rows.push(row);
  }
  const col = (i: number) => median(rows.map((r) => r[i]!));
  return {
    beforeRegistrationMs: col(0) + col(1) + col(2) + col(3) + col(4),
    phase2Ms: col(5),
    applyPollMs: col(6),
    samples,
  };
}

export interface Floor {
  floorMs: number;
  apiRoundTripsMs: number;
  /** From when an ideal client would send the registration to the next block, as observed. */
  nextBlockWaitMs: number;
  /** (confirmations − 1) × block time. */
  remainingConfirmationsMs: number;
  applyDelayMs: number;
}

/**
 * The floor of an update that started at `startedAt` (performance.now time): an ideal client
 * sends the registration right after its round trips, the next block that arrives includes it,
 * and everything after is block time, apply delay and two more round trips.
 */
export function floorOf(args: {
  startedAt: number;
  rtt: RoundTrips;
  blocks: BlockWatcher;
  blockTimeMs: number;
  confirmations: number;
  applyDelayMs: number;
}): Floor {
  const sendAt = args.startedAt + args.rtt.beforeRegistrationMs;
  const next = args.blocks.firstBlockAfter(sendAt);
  // No block seen (the watcher missed it): the average wait.
  const nextBlockWaitMs = next ? next.at - sendAt : args.blockTimeMs / 2;
  const remainingConfirmationsMs = Math.max(0, args.confirmations - 1) * args.blockTimeMs;
  const apiRoundTripsMs = args.rtt.beforeRegistrationMs + args.rtt.phase2Ms + args.rtt.applyPollMs;
  return {
    floorMs: apiRoundTripsMs + nextBlockWaitMs + remainingConfirmationsMs + args.applyDelayMs,
    apiRoundTripsMs,
    nextBlockWaitMs,
    remainingConfirmationsMs,
    applyDelayMs: args.applyDelayMs,
  };
}
