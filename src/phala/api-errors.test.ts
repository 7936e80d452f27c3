import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  PhalaApiError,
  badResponseError,
  errorFromHttpResponse,
  extractErrorInfo,
  kindForStatus,
  networkError,
  parseRetryAfter,
  MAX_RETRY_AFTER_MS,
  redactSecrets,
  timeoutError,
  type PhalaApiErrorKind,
} from './api-errors.ts';

const KEY = 'phak_errors-test-key-0123456789abcdef';

function assertKeyAbsent(err: PhalaApiError): void {
  for (const [label, text] of [
    ['String', String(err)],
    ['stack', err.stack ?? ''],
    ['JSON', JSON.stringify(err)],
    ['inspect', inspect(err, { depth: 10, showHidden: true })],
  ] as const) {
    assert.ok(!text.includes(KEY), `API key leaked through ${label}: ${text}`);
  }
}

function httpError(status: number, body: unknown, headers: Record<string, string> = {}): PhalaApiError {
  return errorFromHttpResponse({
    status,
    statusText: 'X',
    bodyText: typeof body === 'string' ? body : JSON.stringify(body),
    headers: new Headers(headers),
    method: 'PATCH',
    path: '/cvms/cvm_1/envs',
    secrets: [KEY],
  });
}

describe('kindForStatus', () => {
  const cases: [number, PhalaApiErrorKind][] = [
    [400, 'invalid'],
    [401, 'auth'],
    [403, 'auth'],
    [404, 'not_found'],
    [408, 'transient'],
    [409, 'conflict'],
    [422, 'invalid'],
    [429, 'rate_limited'],
    [465, 'bad_response'],
    [466, 'hash_expired'],
    [467, 'tx_not_verified'],
    [468, 'hash_not_allowed'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
    [504, 'transient'],
    [302, 'bad_response'],
  ];
  for (const [status, kind] of cases) {
    it(`${status} → ${kind}`, () => assert.equal(kindForStatus(status), kind));
  }
  it('lets a hash error_code on a generic 4xx decide the kind', () => {
    assert.equal(kindForStatus(400, 'ERR-01-006'), 'hash_expired');
    assert.equal(kindForStatus(400, 'ERR-01-007'), 'tx_not_verified');
    assert.equal(kindForStatus(400, 'ERR-01-008'), 'hash_not_allowed');
    assert.equal(kindForStatus(400, 'ERR-99-999'), 'invalid');
    // A status with its own meaning is not overridden.
    assert.equal(kindForStatus(404, 'ERR-01-006'), 'not_found');
  });
});

describe('retryable', () => {
  it('is true exactly for transient, conflict, rate_limited and tx_not_verified', () => {
    const all: PhalaApiErrorKind[] = [
      'transient',
      'conflict',
      'rate_limited',
      'hash_expired',
      'tx_not_verified',
      'hash_not_allowed',
      'auth',
      'not_found',
      'invalid',
      'bad_response',
    ];
    const retryable = all.filter((kind) => new PhalaApiError({ kind, message: 'm' }).retryable);
    assert.deepEqual(retryable, ['transient', 'conflict', 'rate_limited', 'tx_not_verified']);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds', () => {
    assert.equal(parseRetryAfter('25', now), 25_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('1.5', now), 1500);
  });
  it('reads an HTTP date relative to now, never negative', () => {
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  });
  it('ignores junk', () => {
    assert.equal(parseRetryAfter(null, now), undefined);
    assert.equal(parseRetryAfter('', now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('12abc', now), undefined);
    assert.equal(parseRetryAfter('1e9', now), undefined);
    assert.equal(parseRetryAfter('Infinity', now), undefined);
    assert.equal(parseRetryAfter('x'.repeat(10_000), now), undefined);
  });
  it('caps a long pause at MAX_RETRY_AFTER_MS, whether seconds or a date', () => {
    assert.equal(parseRetryAfter('120', now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('1000000000', now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('9'.repeat(40), now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter('Fri, 01 Jan 2100 00:00:00 GMT', now), MAX_RETRY_AFTER_MS);
  });
});

describe('extractErrorInfo', () => {
  it('reads a top-level structured error', () => {
    const info = extractErrorInfo({
      error_code: 'ERR-01-006',
      message: 'Compose hash expired',
      details: [{ field: 'compose_hash', value: 'ab'.repeat(32), message: 'expired' }, 'junk', { nofield: 1 }],
      suggestions: ['start over', 3],
      links: [{ label: 'docs', url: 'https://docs' }],
      request_id: 'req-1',
    });
    assert.deepEqual(info, {
      message: 'Compose hash expired',
      errorCode: 'ERR-01-006',
      requestId: 'req-1',
      details: [{ field: 'compose_hash', value: 'ab'.repeat(32), message: 'expired' }],
      suggestions: ['start over'],
    });
  });
  it('reads a structured error wrapped in detail', () => {
    const info = extractErrorInfo({ detail: { error_code: 'ERR-03-001', message: 'CVM not found', details: [] } });
    assert.equal(info.message, 'CVM not found');
    assert.equal(info.errorCode, 'ERR-03-001');
    assert.equal(info.details, undefined);
  });
  it('reads a FastAPI string detail', () => {
    assert.deepEqual(extractErrorInfo({ detail: 'Not authenticated' }), { message: 'Not authenticated' });
  });
  it('joins a FastAPI validation list, naming fields and dropping input echoes', () => {
    const info = extractErrorInfo({
      detail: [
        { loc: ['body', 'encrypted_env'], msg: 'Field required', type: 'missing', input: { secret: 'x' } },
        { loc: ['body', 'env_keys', 0], msg: 'Input should be a valid string', type: 'string_type', input: 5 },
        { loc: [], msg: 'Bad body', type: 'value_error' },
      ],
    });
    assert.equal(info.message, 'encrypted_env: Field required; env_keys.0: Input should be a valid string; Bad body');
    assert.deepEqual(info.details, [
      { field: 'encrypted_env', message: 'Field required' },
      { field: 'env_keys.0', message: 'Input should be a valid string' },
      { field: '', message: 'Bad body' },
    ]);
    assert.ok(!JSON.stringify(info).includes('secret'));
  });
  it('reads a detail object without a structured error', () => {
    assert.deepEqual(extractErrorInfo({ detail: { message: 'busy' } }), { message: 'busy' });
    assert.deepEqual(extractErrorInfo({ detail: { foo: 1 } }), {});
  });
  it('ignores non-objects', () => {
    assert.deepEqual(extractErrorInfo(undefined), {});
    assert.deepEqual(extractErrorInfo('text'), {});
    assert.deepEqual(extractErrorInfo([1, 2]), {});
  });
});

describe('redactSecrets', () => {
  it('replaces the secret everywhere, in keys and nested values, without mutating the input', () => {
    const input = { a: `x${KEY}y`, list: [KEY, 1, null], nested: { [KEY]: { deep: `${KEY}${KEY}` } } };
    const snapshot = JSON.stringify(input);
    const out = redactSecrets(input, [KEY]);
    assert.ok(!JSON.stringify(out).includes(KEY));
    assert.equal(out.a, 'x[REDACTED]y');
    assert.equal(JSON.stringify(input), snapshot);
  });
  it('handles cycles', () => {
    const a: Record<string, unknown> = { s: KEY };
    a.self = a;
    const out = redactSecrets(a, [KEY]) as Record<string, unknown>;
    assert.equal(out.s, '[REDACTED]');
    assert.equal(out.self, out);
  });
  it('is the identity without secrets', () => {
    const v = { a: 1 };
    assert.equal(redactSecrets(v, []), v);
    assert.equal(redactSecrets(v, ['']), v);
  });
});

describe('errorFromHttpResponse', () => {
  it('builds a structured 409', () => {
    const err = httpError(409, { error_code: 'ERR-03-010', message: 'Another operation in progress', request_id: 'r-9' });
    assert.equal(err.kind, 'conflict');
    assert.equal(err.status, 409);
    assert.equal(err.errorCode, 'ERR-03-010');
    assert.equal(err.requestId, 'r-9');
    assert.equal(err.message, 'Another operation in progress');
    assert.equal(err.retryable, true);
    assert.equal(err.method, 'PATCH');
    assert.equal(err.path, '/cvms/cvm_1/envs');
    assert.ok(err instanceof Error);
    assert.ok(PhalaApiError.is(err));
    assert.equal(err.name, 'PhalaApiError');
  });
  it('falls back to the status line, then to the response X-Request-ID, then to ours', () => {
    const err = httpError(502, '<html>bad gateway</html>', { 'x-request-id': 'srv-1' });
    assert.equal(err.kind, 'transient');
    assert.equal(err.message, 'HTTP 502 X (non-JSON body)');
    assert.equal(err.requestId, 'srv-1');
    const mine = errorFromHttpResponse({
      status: 500,
      bodyText: '',
      headers: new Headers(),
      sentRequestId: 'mine-1',
    });
    assert.equal(mine.message, 'HTTP 500');
    assert.equal(mine.requestId, 'mine-1');
  });
  it('reads Retry-After on any status', () => {
    assert.equal(httpError(429, { detail: 'slow down' }, { 'retry-after': '7' }).retryAfterMs, 7000);
    assert.equal(httpError(503, '', { 'retry-after': '2' }).retryAfterMs, 2000);
  });
  it('scrubs an API key the server echoes back', () => {
    const err = httpError(401, {
      detail: { error_code: 'ERR-06-000', message: `Invalid API key ${KEY}`, details: [{ field: 'x-api-key', value: KEY }] },
      request_id: KEY,
    });
    assert.equal(err.kind, 'auth');
    assert.equal(err.message, 'Invalid API key [REDACTED]');
    assert.deepEqual(err.details, [{ field: 'x-api-key', value: '[REDACTED]' }]);
    assertKeyAbsent(err);
  });
  it('caps absurdly long messages', () => {
    const err = httpError(400, { detail: 'x'.repeat(10_000) });
    assert.ok(err.message.length < 2100);
  });
});

describe('toJSON / toString / inspect', () => {
  it('serialises the safe fields only', () => {
    const err = httpError(
      468,
      {
        error_code: 'ERR-01-008',
        message: 'Compose hash not allowed on-chain',
        details: [{ field: 'compose_hash', value: 'cd'.repeat(32) }],
        suggestions: ['register it'],
      },
      { 'retry-after': '1' },
    );
    assert.deepEqual(JSON.parse(JSON.stringify(err)), {
      name: 'PhalaApiError',
      kind: 'hash_not_allowed',
      retryable: false,
      message: 'Compose hash not allowed on-chain',
      status: 468,
      errorCode: 'ERR-01-008',
      details: [{ field: 'compose_hash', value: 'cd'.repeat(32) }],
      suggestions: ['register it'],
      retryAfterMs: 1000,
      method: 'PATCH',
      path: '/cvms/cvm_1/envs',
    });
    assert.equal(
      String(err),
      'PhalaApiError [hash_not_allowed 468 ERR-01-008]: Compose hash not allowed on-chain (PATCH /cvms/cvm_1/envs)',
    );
    assert.match(inspect(err), /kind: 'hash_not_allowed'/);
  });
});

describe('factories', () => {
  it('networkError keeps codes and messages of the cause chain, not the cause object', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    const outer = Object.assign(new TypeError('fetch failed', { cause }), {
      request: { headers: { 'X-API-Key': KEY } },
    });
    const err = networkError({ cause: outer, method: 'GET', path: '/cvms/a', secrets: [KEY] });
    assert.equal(err.kind, 'transient');
    assert.equal(err.status, undefined);
    assert.equal(err.message, 'network error: fetch failed <- connect ECONNREFUSED 127.0.0.1:9');
    assert.equal((err as { cause?: unknown }).cause, undefined);
    assertKeyAbsent(err);
  });
  it('networkError redacts a key inside a cause message', () => {
    const err = networkError({ cause: new Error(`bad header ${KEY}`), secrets: [KEY] });
    assert.equal(err.message, 'network error: bad header [REDACTED]');
  });
  it('timeoutError names the timeout', () => {
    const err = timeoutError({ timeoutMs: 250, method: 'GET', path: '/kms' });
    assert.equal(err.kind, 'transient');
    assert.match(err.message, /timed out after 250 ms/);
  });
  it('badResponseError lists schema paths and codes, no values', () => {
    const err = badResponseError({
      reason: 'HTTP 200 body does not match the expected schema',
      status: 200,
      issues: [
        { path: ['kms_info', 'chain_id'], code: 'invalid_type' },
        { path: [], code: 'custom' },
      ],
    });
    assert.equal(err.kind, 'bad_response');
    assert.equal(err.retryable, false);
    assert.equal(err.message, 'HTTP 200 body does not match the expected schema: kms_info.chain_id (invalid_type), (root) (custom)');
    assert.deepEqual(err.details, [
      { field: 'kms_info.chain_id', message: 'invalid_type' },
      { field: '(root)', message: 'custom' },
    ]);
  });
});
