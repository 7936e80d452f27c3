// One factory for every activity: the worker injects the API client, chain access and
// signer, and tests inject the same things pointed at the local stack.
import { chainClientCache, createChainActivities, type ChainActivityDeps } from './chain-activities.ts';
import { createSignerActivities, type SignerActivityDeps } from './signer-activities.ts';
import { createOwnerActivities } from './owner-activities.ts';
import { createPhalaActivities, type PhalaActivityDeps } from './phala-activities.ts';
import { createRequestActivities } from './request-activities.ts';
import { withHeartbeats } from './heartbeat.ts';
import { kmsKeyReader } from './kms-key.ts';

export type ActivityDeps = PhalaActivityDeps & ChainActivityDeps & SignerActivityDeps;

export function createActivities(deps: ActivityDeps) {
  const clientFor = chainClientCache(deps);
  return withHeartbeats({
    ...createPhalaActivities({ ...deps, kmsKeyOnChain: deps.kmsKeyOnChain ?? kmsKeyReader(deps, clientFor) }),
    ...createChainActivities(deps, clientFor),
    ...createSignerActivities(deps, clientFor),
    ...createOwnerActivities(deps, clientFor),
    ...createRequestActivities(),
  });
}
