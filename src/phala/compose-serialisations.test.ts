// Each known writer against the real implementation: @phala/cloud's own functions for the JS
// writers, and the python3 interpreter's json.dumps for the Python ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dumpAppCompose } from '@phala/cloud';
import { canonicalComposeJson } from './compose-hash.ts';
import { COMPOSE_SERIALISATIONS, phalaCloudDump, serialisationByName } from './compose-serialisations.ts';

const DOCS: Record<string, unknown>[] = [
  {
    runner: 'docker-compose',
    name: 'café-app',
    allowed_envs: ['Z', 'A'],
    docker_compose_file: 'services:\n  app:\n    image: "x": y\n    command: ["echo", "ünïcødé ✓ 😀"]\n',
    pre_launch_script: '',
    bash_script: null,
    features: ['kms', 'tproxy-net'],
    kms_enabled: true,
    manifest_version: 2,
    nested: { b: [1, { d: null, c: 'ctl\u0001\u007f\b\f\n\r\t"\\' }], a: false },
  },
  { ä: 1, a: 2, B: 3, '😀': 4, '\uffff': 5, z: [[], {}] },
];

const PY = `
import json, sys
doc = json.loads(sys.stdin.read())
out = []
for sort_keys in (True, False):
    for seps in ((",", ":"), (", ", ": ")):
        for ascii_ in (False, True):
            out.append(json.dumps(doc, sort_keys=sort_keys, separators=seps, ensure_ascii=ascii_))
print(json.dumps(out))
`;

const PY_NAMES = [
  'python-sorted-compact',
  'python-sorted-compact-ascii',
  'python-sorted',
  'python-sorted-ascii',
  'python-compact',
  'python-compact-ascii',
  'python',
  'python-ascii',
];

test('the python* writers are byte-identical to python3 json.dumps with the named options', () => {
  for (const doc of DOCS) {
    const expected = JSON.parse(execFileSync('python3', ['-c', PY], { input: JSON.stringify(doc), encoding: 'utf8' })) as string[];
    PY_NAMES.forEach((name, i) => {
      assert.equal(serialisationByName(name)!.serialise(doc), expected[i], name);
    });
    // ensure_ascii really differs on this document, so the variants are not redundant.
    assert.notEqual(expected[0], expected[1]);
  }
});

test('phala-cloud is @phala/cloud dumpAppCompose; dstack-js is the SDK canonical form', () => {
  for (const doc of DOCS) {
    assert.equal(phalaCloudDump(doc), dumpAppCompose(doc as Parameters<typeof dumpAppCompose>[0]));
    assert.equal(serialisationByName('dstack-js')!.serialise(doc), canonicalComposeJson(doc));
  }
});

test('every writer has a unique name and produces distinct bytes for a document with non-ASCII text', () => {
  const names = COMPOSE_SERIALISATIONS.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  const outputs = COMPOSE_SERIALISATIONS.map((s) => s.serialise(DOCS[0]!));
  // dstack-js and python-sorted-compact agree on JSON data (that is the dstack SDKs' contract).
  assert.equal(outputs[0], outputs[2]);
  assert.equal(new Set(outputs).size, outputs.length - 1);
});
