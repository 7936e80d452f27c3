// One factory for every activity: the worker injects the API client, chain access and
// signer, and tests inject the same things pointed at the local stack.
import { createChainActivities, type ChainActivityDeps } from './chain-activities.ts';
import { createPhalaActivities, type PhalaActivityDeps } from './phala-activities.ts';
import { withHeartbeats } from './heartbeat.ts';

export type ActivityDeps = PhalaActivityDeps & ChainActivityDeps;

export function createActivities(deps: ActivityDeps) {
  return withHeartbeats({ ...createPhalaActivities(deps), ...createChainActivities(deps) });
}
