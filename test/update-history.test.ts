// What Temporal stores: no plaintext env value anywhere in raw history or search
// attributes, and recorded histories replay deterministically against today's code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { createDataConverter } from '../src/codec.ts';
import { awaitEnvUpdate, startEnvUpdate } from '../src/client.ts';
import { WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from '../src/workflow-bundling.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

const runs: { workflowId: string; runId: string; secrets: string[] }[] = [];

async function rawHistory(workflowId: string, runId: string): Promise<proto.temporal.api.history.v1.IHistory> {
  const events: proto.temporal.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    // The raw service call: nothing here goes through the payload codec.
    const page = await setup.h.client.workflowService.getWorkflowExecutionHistory({
      namespace: setup.stack.info.temporalNamespace,
      execution: { workflowId, runId },
      nextPageToken,
    });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return { events };
}

for (const kms of ['onchain', 'phala'] as const) {
  test(`${kms}: the raw history holds none of the env values, in any encoding`, async () => {
    const cvm = await setup.h.newCvm(kms === 'onchain' ? { kms, appId: setup.h.appId(true), allowedEnvs: ['X'] } : { kms });
    const secrets = [`sk_live_${randomBytes(16).toString('hex')}`, `pw-${randomBytes(12).toString('base64url')}`];
    const env = { STRIPE_KEY: secrets[0]!, DB_PASSWORD: secrets[1]! };
    const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
    const result = await awaitEnvUpdate(handle);
    assert.equal(result.applied, true);
    const runId = (await handle.describe()).runId;
    runs.push({ workflowId: handle.workflowId, runId, secrets });

    const history = await rawHistory(handle.workflowId, runId);
    const bytes = Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish());
    assert.ok(bytes.length > 1000, 'history was read');
    for (const s of secrets) {
      for (const form of [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('hex')]) {
        assert.equal(bytes.indexOf(Buffer.from(form)), -1, `a secret appears in raw history (${form === s ? 'utf8' : 'encoded'})`);
      }
    }
    // Every payload is the codec's ciphertext.
    const inputPayload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    assert.equal(Buffer.from(inputPayload?.metadata?.encoding ?? []).toString(), 'binary/encrypted');

    const description = await handle.describe();
    const attributes = JSON.stringify(description.raw.workflowExecutionInfo?.searchAttributes ?? {});
    for (const s of secrets) assert.ok(!attributes.includes(s) && !attributes.includes(Buffer.from(s).toString('base64')));
    // Ours, beside the server's own (BuildIds): only ids and the phase.
    const ours = Object.fromEntries(
      description.typedSearchAttributes
        .getAll()
        .filter((p) => ['AppId', 'CvmId', 'UpdatePhase'].includes(p.key.name))
        .map((p) => [p.key.name, p.value]),
    );
    assert.deepEqual(ours, { AppId: cvm.appId.toLowerCase(), CvmId: cvm.id, UpdatePhase: 'completed' });

    // Each search attribute write is a visibility write on the server: one for the patch
    // baseline, one for the ids, then the phases an update can wait in, never a passing one.
    const upserts = (history.events ?? [])
      .map((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}))
      .filter((keys) => keys.length > 0);
    assert.equal(upserts.filter((k) => k.includes('TemporalChangeVersion')).length, 1, 'one patch marker: the baseline');
    const phases = (history.events ?? [])
      .map((e) => e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.UpdatePhase?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .map((d) => JSON.parse(Buffer.from(d).toString()) as string);
    for (const passing of ['resolving', 'encrypting', 'checking'])
      assert.ok(!phases.includes(passing), `UpdatePhase ${passing} was written`);
    assert.ok(upserts.length <= (kms === 'onchain' ? 10 : 6), `${upserts.length} search attribute writes: ${JSON.stringify(phases)}`);
  });
}

test('recorded histories replay against the current workflow code', async () => {
  assert.ok(runs.length >= 2, 'the history tests ran first');
  const histories = await Promise.all(
    runs.map(async (r) => ({ workflowId: r.workflowId, history: await rawHistory(r.workflowId, r.runId) })),
  );
  const results = Worker.runReplayHistories(
    {
      workflowsPath: WORKFLOWS_PATH,
      interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES },
      dataConverter: createDataConverter(setup.stack.env.PAYLOAD_ENCRYPTION_KEYS!),
    },
    histories,
  );
  let replayed = 0;
  for await (const r of results) {
    assert.equal(r.error, undefined, `replay of ${r.workflowId} failed: ${r.error}`);
    replayed++;
  }
  assert.equal(replayed, runs.length);
});
