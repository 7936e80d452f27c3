import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { preprocessAppCompose } from '@phala/cloud';
import { assessRequestedComposeHash, explainComposeHash, sdkPreprocess, semanticDifferences } from './compose-hash-check.ts';
import { pythonJsonDumps, serialisationByName } from './compose-serialisations.ts';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const CURRENT: Record<string, unknown> = {
  allowed_envs: ['A'],
  docker_compose_file: 'services: {app: {image: "nginx", command: "echo café"}}',
  bash_script: 'echo ignored by the compose runner',
  pre_launch_script: '',
  runner: 'docker-compose',
  name: 'app',
  kms_enabled: true,
  storage_fs: null,
};

function hashWith(writer: string, doc: Record<string, unknown>): string {
  return sha(serialisationByName(writer)!.serialise(doc));
}

test('sdkPreprocess drops what @phala/cloud preprocessAppCompose drops', () => {
  for (const doc of [
    CURRENT,
    { ...CURRENT, runner: 'bash' },
    { ...CURRENT, pre_launch_script: 'x' },
    { runner: 'nerdctl-compose', bash_script: 'b' },
  ]) {
    const ours = sdkPreprocess(doc);
    if (doc.runner === 'nerdctl-compose') {
      // The dstack Python SDK also treats nerdctl-compose as a compose runner; @phala/cloud does not.
      assert.deepEqual(ours, { runner: 'nerdctl-compose' });
      continue;
    }
    assert.deepEqual(ours, preprocessAppCompose(doc as Parameters<typeof preprocessAppCompose>[0]));
  }
});

test('verified under every writer, after preprocessing, without nulls, and with the keys sorted by the backend', () => {
  const keys = ['B', 'A'];
  const next = { ...CURRENT, allowed_envs: keys };
  const cases: [string, string][] = [
    ['dstack-js', hashWith('dstack-js', next)],
    ['phala-cloud', hashWith('phala-cloud', sdkPreprocess(next))],
    ['python-sorted-compact-ascii', hashWith('python-sorted-compact-ascii', next)],
    ['python-ascii', hashWith('python-ascii', Object.fromEntries(Object.entries(next).filter(([, v]) => v !== null)))],
    [
      'python-sorted (keys sorted)',
      sha(pythonJsonDumps({ ...next, allowed_envs: ['A', 'B'] }, { sortKeys: true, separators: [', ', ': '], ensureAscii: false })),
    ],
  ];
  for (const [label, requested] of cases) {
    const r = assessRequestedComposeHash({
      current: CURRENT,
      currentHash: hashWith('dstack-js', CURRENT),
      allowedKeys: keys,
      requested: `0x${requested.toUpperCase()}`,
    });
    assert.equal(r.verdict, 'verified', `${label}: ${r.detail}`);
  }
});

test('contradicted: the writer that reproduces the current hash gives another value for current + our keys', () => {
  const keys = ['A', 'B'];
  const drifted = { ...CURRENT, allowed_envs: keys, kms_enabled: false };
  const r = assessRequestedComposeHash({
    current: CURRENT,
    currentHash: hashWith('python-ascii', CURRENT),
    allowedKeys: keys,
    requested: hashWith('python-ascii', drifted),
  });
  assert.equal(r.verdict, 'contradicted');
  assert.equal(r.current?.serialisation, 'python-ascii');
  assert.equal(r.computed, hashWith('python-ascii', { ...CURRENT, allowed_envs: keys }));
  assert.match(r.detail, /python-ascii.*reproduces the CVM's current hash/);
});

test('unexplained: no known writer reproduces even the current hash', () => {
  const r = assessRequestedComposeHash({
    current: CURRENT,
    currentHash: sha('something else'),
    allowedKeys: ['A'],
    requested: sha('another'),
  });
  assert.equal(r.verdict, 'unexplained');
  assert.match(r.detail, /no known serialisation \(dstack-js, phala-cloud/);
  assert.equal(explainComposeHash(CURRENT, sha('x')), null);
});

test('the meaning check: only allowed_envs may change, only droppable fields may be left out', () => {
  assert.deepEqual(semanticDifferences(CURRENT, { ...CURRENT, allowed_envs: ['A', 'B'] }, ['B', 'A']), []);
  assert.deepEqual(semanticDifferences(CURRENT, { ...sdkPreprocess(CURRENT), allowed_envs: ['A'] }, ['A']), []);
  assert.deepEqual(semanticDifferences(CURRENT, { ...CURRENT, allowed_envs: ['A', 'C'] }, ['A', 'B']), [
    'allowed_envs adds C',
    'allowed_envs lacks B',
  ]);
  assert.deepEqual(semanticDifferences(CURRENT, { ...CURRENT, allowed_envs: ['A', 'A'] }, ['A']), ['allowed_envs repeats a name']);
  const { docker_compose_file: _d, ...noCompose } = CURRENT;
  assert.deepEqual(semanticDifferences(CURRENT, { ...noCompose, allowed_envs: ['A'] }, ['A']), ['docker_compose_file is dropped']);
  assert.deepEqual(semanticDifferences(CURRENT, { ...CURRENT, allowed_envs: ['A'], kms_enabled: false, extra: 1 }, ['A']), [
    'kms_enabled differs',
    'extra is added',
  ]);
});
