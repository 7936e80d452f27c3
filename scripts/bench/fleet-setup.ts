// The fleet: app contracts owned by the signer, each with C CVMs that boot the same compose,
// and for each CVM an env with one new allowed key (the same for the whole app), so each app
// needs exactly one registration.
import { randomBytes } from 'node:crypto';
import type { SimAdminClient, SimCvmSummary } from '../../src/simulator/admin-client.ts';
import { BenchFailure, secretValue, type Prepared } from './updates.ts';

export interface FleetApp {
  appId: string;
  cvms: Prepared[];
}

async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** Creates `cvmsPerApp` CVMs for every app and the env each will be updated with. */
export async function createFleet(
  sim: SimAdminClient,
  appIds: string[],
  cvmsPerApp: number,
  opts: { label: string; applyDelayMs?: number },
): Promise<FleetApp[]> {
  const tag = randomBytes(3).toString('hex').toUpperCase();
  const existing = ['FLEET_DB_URL', 'FLEET_TOKEN'];
  const keys = [...existing, `FLEET_NEW_${tag}`];
  const create = (appId: string, i: number) =>
    sim.createCvm({
      kms: 'onchain',
      appId,
      name: `${opts.label}-${appId.slice(2, 10)}-${i}`,
      allowedEnvs: existing,
      ...(opts.applyDelayMs !== undefined ? { applyDelayMs: opts.applyDelayMs } : {}),
    });
  // The first CVM of an app makes the simulator read the app's owner from the chain once.
  const firsts = await inBatches(appIds, 10, (appId) => create(appId, 0));
  const rest = await inBatches(
    appIds.flatMap((appId) => Array.from({ length: cvmsPerApp - 1 }, (_, i) => ({ appId, i: i + 1 }))),
    10,
    ({ appId, i }) => create(appId, i),
  );
  return appIds.map((appId, a) => {
    const cvms: SimCvmSummary[] = [firsts[a]!, ...rest.filter((c) => c.appId.toLowerCase() === appId.toLowerCase())];
    const hashes = new Set(cvms.map((c) => c.composeHash));
    // Otherwise the scenario would need more than one registration per app and measure something else.
    if (hashes.size !== 1) throw new BenchFailure(`the ${cvms.length} CVMs of app ${appId} boot ${hashes.size} different composes`);
    return { appId, cvms: cvms.map((cvm) => ({ cvm, env: keys.map((key) => ({ key, value: secretValue() })), allowedKeys: keys })) };
  });
}
