import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { getComposeHash as sdkGetComposeHashTyped } from '@phala/cloud';
import { ComposeHashError, canonicalComposeJson, getComposeHash } from './compose-hash.ts';

interface Vector {
  name: string;
  compose: Record<string, unknown>;
  canonical: string;
  hash: string;
}
// The SDK types its input as a full AppCompose; the function itself hashes any JSON object.
const sdkGetComposeHash = (c: Record<string, unknown>): string => sdkGetComposeHashTyped(c as Parameters<typeof sdkGetComposeHashTyped>[0]);

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/compose-hash.json', import.meta.url), 'utf8')) as Vector[];

const COMPOSES: [string, Record<string, unknown>][] = [
  ['empty', {}],
  [
    'realistic',
    {
      runner: 'docker-compose',
      name: 'app',
      manifest_version: 2,
      docker_compose_file: 'services:\n  app:\n    image: "ghcr.io/x/y@sha256:abc"\n',
      allowed_envs: ['Z_LAST', 'A_FIRST', 'MIDDLE'],
      features: ['kms', 'tproxy-net'],
      kms_enabled: true,
      gateway_enabled: false,
      pre_launch_script: '',
      key_provider_id: null,
    },
  ],
  ['nested objects and arrays', { b: { d: [{ z: 1, a: [{ y: 2, x: 3 }] }], c: null }, a: [[], {}, [[1]]] }],
  [
    'unicode keys and values',
    { ü: 'ä', u: '\u2028\u2029', 'z\u0000': 'nul', '\ud83d\ude00': 'astral', '\uffff': 'bmp-last', ctl: '\b\f\n\r\t\u001f' },
  ],
  ['numbers', { a: 0, b: -0, c: 1.5, d: -1e-7, e: 1e21, f: 123456789012345680000, g: 5e-324, h: Number.MAX_SAFE_INTEGER }],
  ['NaN and infinities', { nan: NaN, inf: Infinity, ninf: -Infinity, arr: [NaN, 1, Infinity], nested: { x: -Infinity } }],
  ['allowed_envs variants', { allowed_envs: [] }],
  ['allowed_envs many', { allowed_envs: Array.from({ length: 50 }, (_, i) => `KEY_${(i * 7919) % 101}`) }],
  ['index-like keys', { '10': 1, '2': 2, '01': 3, '-1': 4, '1.5': 5, '4294967294': 6, '4294967295': 7, a: 8, '': 9 }],
  ['undefined dropped in objects, null in arrays', { a: undefined, b: [undefined, 1], c: 'x' }],
  ['booleans and nulls', { t: true, f: false, n: null }],
  ['Date via toJSON', { at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) }],
  ['long string', { docker_compose_file: 'x'.repeat(100_000) }],
];

test('identical to the official SDK getComposeHash', () => {
  for (const [name, compose] of COMPOSES) {
    assert.equal(getComposeHash(compose), sdkGetComposeHash(compose), name);
  }
});

test('seeded random JSON documents match the SDK', () => {
  let x = 987654321;
  const next = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 0x100000000;
  };
  const keys = ['a', 'B', 'b', '_', 'z', 'é', '10', '2', 'allowed_envs', 'name', '\u00ff', '😀', ''];
  const gen = (depth: number): unknown => {
    const r = next();
    if (depth > 3 || r < 0.3) {
      const leaves = [null, true, false, 0, -1.25, 1e300, NaN, Infinity, 'str', 'é"\\\n', ''];
      return leaves[Math.floor(next() * leaves.length)];
    }
    if (r < 0.6) return Array.from({ length: Math.floor(next() * 4) }, () => gen(depth + 1));
    const obj: Record<string, unknown> = {};
    const n = Math.floor(next() * 5);
    for (let i = 0; i < n; i++) obj[keys[Math.floor(next() * keys.length)] as string] = gen(depth + 1);
    return obj;
  };
  for (let i = 0; i < 2000; i++) {
    const doc = { root: gen(0), [keys[i % keys.length] as string]: gen(1) };
    assert.equal(getComposeHash(doc), sdkGetComposeHash(doc), `case ${i}`);
  }
});

test('canonical form: sorted, compact, NaN as null, hash is sha256 of its UTF-8', () => {
  const compose = { b: 1, a: { d: [NaN, 'ü'], c: Infinity } };
  const canonical = canonicalComposeJson(compose);
  assert.equal(canonical, '{"a":{"c":null,"d":[null,"ü"]},"b":1}');
  const expected = createHash('sha256').update(Buffer.from(canonical, 'utf8')).digest('hex');
  assert.equal(getComposeHash(compose), expected);
  assert.match(getComposeHash(compose), /^[0-9a-f]{64}$/);
});

test('key order and reordering do not change the hash; allowed_envs order does', () => {
  const a = getComposeHash({ x: 1, y: { p: 1, q: 2 }, allowed_envs: ['A', 'B'] });
  const b = getComposeHash({ y: { q: 2, p: 1 }, allowed_envs: ['A', 'B'], x: 1 });
  const c = getComposeHash({ x: 1, y: { p: 1, q: 2 }, allowed_envs: ['B', 'A'] });
  assert.equal(a, b);
  assert.notEqual(a, c);
});

test('committed vectors', () => {
  assert.ok(vectors.length >= 4);
  for (const v of vectors) {
    assert.equal(canonicalComposeJson(v.compose), v.canonical, v.name);
    assert.equal(getComposeHash(v.compose), v.hash, v.name);
    assert.equal(sdkGetComposeHash(v.compose), v.hash, `${v.name} (SDK)`);
  }
});

test('values JSON cannot represent are refused clearly', () => {
  assert.throws(() => getComposeHash({ n: 1n }), ComposeHashError);
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  assert.throws(() => getComposeHash(loop), /circular reference at \$\.self/);
  // Shared, non-circular references are fine.
  const shared = { k: 1 };
  assert.equal(getComposeHash({ a: shared, b: shared }), sdkGetComposeHash({ a: shared, b: shared }));
});

test('documented difference: non-plain objects are sorted too', () => {
  const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 });
  assert.equal(canonicalComposeJson({ x: bare }), '{"x":{"a":2,"b":1}}');
});
