// What the workflow bundle carries. The worker evaluates the bundle's modules once per cached
// workflow, so a library pulled into workflow code costs its evaluated size 200 times in a fleet
// (zod did: about 1 MB per workflow). Only the SDK and its own dependencies belong there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildWorkflowBundle } from '../src/workflow-bundling.ts';

const SDK_PACKAGES = new Set(['@temporalio/common', '@temporalio/workflow', 'nexus-rpc', 'long', 'ms']);

test('the workflow bundle holds only workflow code and the SDK: no zod, viem or noble', async () => {
  const code = await buildWorkflowBundle();
  const packages = new Set([...code.matchAll(/node_modules\/((?:@[\w.-]+\/)?[\w.-]+)\//g)].map((m) => m[1]!));
  assert.ok(packages.has('@temporalio/workflow'), `the scan found the SDK (${[...packages].join(', ')})`);
  const foreign = [...packages].filter((p) => !SDK_PACKAGES.has(p));
  assert.deepEqual(foreign, [], `packages evaluated per workflow: ${foreign.join(', ')}`);
});
