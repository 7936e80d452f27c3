// In-flight workflows survive code changes: every history under test/histories (recorded by
// `npm run record-histories` from a released version of the workflow code) must replay
// against today's code without a nondeterminism error. Fixtures are only ever added, so a
// change that reorders, adds or removes commands without a patched() guard fails here.
// Needs no Temporal server: replay runs entirely in the worker.
import { UPDATE_BASELINE_PATCHES } from '../src/workflows/patch-baseline.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { AesGcmPayloadCodec, createDataConverter, ENCRYPTED_ENCODING, parsePayloadKeys } from '../src/codec.ts';
import { WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from '../src/workflow-bundling.ts';
import { FIXTURE_PAYLOAD_KEYS, FIXTURE_SECRET_PREFIX } from './histories/fixture-key.ts';
import { quietTemporalRuntime } from './support/runtime.ts';
import { activityCalls, activityTasks } from './support/activity-calls.ts';

quietTemporalRuntime();

const DIR = join(import.meta.dirname, 'histories');

interface Fixture {
  file: string;
  text: string;
  workflowId: string;
  recordedWith: { version: string; scenario: string };
  history: proto.temporal.api.history.v1.IHistory;
}

const fixtures: Fixture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => {
    const text = readFileSync(join(DIR, file), 'utf8');
    const raw = JSON.parse(text) as { workflowId: string; recordedWith: Fixture['recordedWith']; history: unknown };
    return { file, text, workflowId: raw.workflowId, recordedWith: raw.recordedWith, history: historyFromJSON(raw.history) };
  });

const events = (f: Fixture) => f.history.events ?? [];
const activityTypes = (f: Fixture) => activityCalls(events(f));

test('the fixtures cover the four kinds of run this version was recorded with', () => {
  const scenarios = new Set(fixtures.map((f) => f.recordedWith.scenario));
  for (const s of ['onchain', 'phala-kms', 'operator-use-tx', 'reorg-during-confirmations'])
    assert.ok(scenarios.has(s), `no fixture for ${s}`);
  for (const f of fixtures) {
    const types = activityTypes(f);
    // Since 0.2.0 an update asks the signer's transaction manager; before, it signed itself.
    const viaManager = types.includes('requestRegistration');
    const signals = (name: string) => events(f).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === name).length;
    if (f.recordedWith.scenario === 'signer-manager') {
      // The manager never ends; its history is recorded while it runs.
      assert.ok(signals('register') >= 3, `${f.file}: three asks`);
      assert.equal(types.filter((t) => t === 'signNewRegistrations').length >= 1, true, `${f.file}: signed`);
      continue;
    }
    assert.ok(events(f).at(-1)?.workflowExecutionCompletedEventAttributes, `${f.file}: the recorded run completed`);
    if (f.recordedWith.scenario === 'phala-kms') assert.ok(!types.includes('signRegistration') && !viaManager, `${f.file}: no chain step`);
    if (f.recordedWith.scenario === 'onchain') assert.ok(types.includes('signRegistration') || viaManager, `${f.file}: registers on chain`);
    if (f.recordedWith.scenario === 'operator-use-tx') {
      // A signal before 0.3.0; since, the useTransaction Update (checked on chain before it is accepted).
      assert.ok(
        events(f).some(
          (e) =>
            e.workflowExecutionSignaledEventAttributes?.signalName === 'useTransaction' ||
            e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'useTransaction',
        ),
        `${f.file}: has the hand-over`,
      );
    }
    if (f.recordedWith.scenario === 'reorg-during-confirmations' && !viaManager) {
      assert.ok(
        types.filter((t) => t === 'broadcastTransaction').length >= 2,
        `${f.file}: the registration went out again after the reorg`,
      );
    }
    // Since the manager's quiet notices, a quick chain answers once (confirmed).
    if (viaManager) assert.ok(signals('registrationNotice') >= 1, `${f.file}: the manager's answers are in the history`);
    if (readsLocally(f)) {
      // The quick reads are markers; the ciphertext and the calls with effects or long waits stay activity tasks.
      const tasks = activityTasks(events(f));
      const reads = ['findEarlierRequest', 'resolveCvm', 'getEncryptionKey', 'checkComposeHash', 'chainPreflight', 'requestRegistration'];
      assert.deepEqual(
        tasks.filter((t) => reads.includes(t)),
        [],
        `${f.file}: reads as activity tasks`,
      );
      assert.ok(types.includes('resolveCvm') && types.includes('getEncryptionKey'), `${f.file}: the reads are local activities`);
      for (const t of ['sealEnv', 'submitEnvUpdate', 'observeApplied']) assert.ok(tasks.includes(t), `${f.file}: ${t} is an activity task`);
    }
  }
  assert.ok(
    fixtures.some((f) => readsLocally(f) && activityTypes(f).includes('findEarlierRequest')),
    'a fixture runs the request guard as a local activity',
  );
});

/** Runs since 'local-reads', on their own or under the patch baseline that covers it. */
function readsLocally(f: Fixture): boolean {
  const patches = patchesOf(f);
  return patches.includes('local-reads') || patches.some((p) => UPDATE_BASELINE_PATCHES.includes(p));
}

function patchesOf(f: Fixture): string[] {
  return events(f).flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    const data = marker?.markerName === 'core_patch' ? marker.details?.['patch-data']?.payloads?.[0]?.data : undefined;
    return data ? [(JSON.parse(Buffer.from(data).toString()) as { id: string }).id] : [];
  });
}

test("the fixtures hold no plaintext env value: every payload is the codec's ciphertext", async () => {
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(FIXTURE_PAYLOAD_KEYS));
  for (const f of fixtures) {
    const input = events(f)[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    assert.ok(input.length > 0, `${f.file}: has the workflow input`);
    if (f.recordedWith.scenario === 'signer-manager') {
      // No env here, only addresses and hashes; still every payload must be ciphertext (below).
      assert.ok(!f.text.includes(FIXTURE_SECRET_PREFIX), `${f.file}: a marked value appears in clear`);
    } else {
      // Decoding proves the ciphertext is real and gives the values to search the file for.
      const [decoded] = await codec.decode(input);
      const env = (JSON.parse(Buffer.from(decoded!.data!).toString()) as { env: Record<string, string> }).env;
      const values = Object.values(env);
      assert.ok(values.length > 0 && values.every((v) => v.startsWith(FIXTURE_SECRET_PREFIX)), `${f.file}: recorded with marked values`);
      assert.ok(!f.text.includes(FIXTURE_SECRET_PREFIX), `${f.file}: a marked value appears in clear`);
      for (const v of values) {
        for (const form of [v, Buffer.from(v).toString('base64'), Buffer.from(v).toString('hex')]) {
          assert.ok(!f.text.includes(form), `${f.file}: an env value appears in the fixture`);
        }
      }
    }
    // Search attributes and the SDK core's own marker data (patch ids; a local activity's type, attempt and
    // times) are the only payloads kept unencoded. A local activity's result in its marker is ciphertext.
    let encrypted = 0;
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      const encoding = (o.metadata as Record<string, string> | undefined)?.encoding;
      if (
        typeof encoding === 'string' &&
        'data' in o &&
        !/searchAttributes|markerRecordedEventAttributes\.details\.(patch-data|data)\./i.test(path)
      ) {
        assert.equal(Buffer.from(encoding, 'base64').toString(), ENCRYPTED_ENCODING, `${f.file}: clear payload at ${path}`);
        encrypted++;
        return;
      }
      for (const [k, v] of Object.entries(o)) walk(v, `${path}.${k}`);
    };
    walk(JSON.parse(f.text).history, 'history');
    assert.ok(encrypted > 10, `${f.file}: ${encrypted} encrypted payloads`);
  }
});

test('every recorded history replays against the current workflow code', async () => {
  assert.ok(fixtures.length >= 4);
  const results = Worker.runReplayHistories(
    {
      workflowsPath: WORKFLOWS_PATH,
      interceptors: { workflowModules: WORKFLOW_INTERCEPTOR_MODULES },
      dataConverter: createDataConverter(FIXTURE_PAYLOAD_KEYS),
    },
    fixtures.map((f) => ({ workflowId: f.workflowId, history: f.history })),
  );
  const failures: string[] = [];
  let replayed = 0;
  for await (const r of results) {
    replayed++;
    if (r.error) failures.push(`${r.workflowId}: ${r.error}`);
  }
  assert.deepEqual(failures, []);
  assert.equal(replayed, fixtures.length);
});
