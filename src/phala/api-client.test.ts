import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { createClient } from '@phala/cloud';
import { PhalaCloudClient, readPreconditionRequired } from './api-client.ts';
import { PhalaApiError, type PhalaApiErrorKind } from './api-errors.ts';
import type { CvmDetailInput, KmsInfo } from './api-schemas.ts';

const API_KEY = 'phak_client-test-SECRET-7f3a9c1e5b2d4f6a8c0e';

// ---------------------------------------------------------------------------
// Local HTTP server
// ---------------------------------------------------------------------------

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Handler = (req: Recorded, res: http.ServerResponse) => void;

interface TestServer {
  baseUrl: string;
  port: number;
  requests: Recorded[];
  handle(h: Handler): void;
  close(): Promise<void>;
}

async function startServer(): Promise<TestServer> {
  const requests: Recorded[] = [];
  let handler: Handler = (_req, res) => {
    res.writeHead(500).end();
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(rec);
      handler(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/api/v1`,
    port,
    requests,
    handle(h) {
      handler = h;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  };
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const APP_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const COMPOSE_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const KMS_INFO: KmsInfo = {
  id: 'kms_base_prod',
  slug: 'base-prod',
  url: 'https://kms.base.example',
  version: 'v0.5.3',
  chain_id: 8453,
  kms_contract_address: '0x2f83172A49584C017F2B256F0FB2Dca14126Ba9C',
  gateway_app_id: '0x1234567890abcdef1234567890abcdef12345678',
  k256_pubkey: '02' + 'ab'.repeat(32),
};

const CVM: CvmDetailInput = {
  id: 'cvm_0123abcd',
  name: 'my-app',
  app_id: APP_ID,
  vm_uuid: '4f8e2c1a-9b7d-4e3f-8a6c-1d2e3f4a5b6c',
  instance_id: null,
  resource: {
    instance_type: 'tdx.small',
    vcpu: 1,
    memory_in_gb: 2,
    disk_in_gb: 20,
    gpus: 0,
    compute_billing_price: '0.058',
    billing_period: 'hourly',
  },
  node_info: {
    object_type: 'node',
    id: 7,
    name: 'prod7',
    region: 'us-west',
    device_id: 'dev'.padEnd(64, '0'),
    ppid: null,
    status: 'ONLINE',
    version: '0.5.3',
  },
  os: { name: 'dstack', version: '0.5.3', is_dev: false, os_image_hash: null },
  kms_type: 'base',
  kms_info: {
    chain_id: 8453,
    dstack_kms_address: KMS_INFO.kms_contract_address ?? null,
    dstack_app_address: `0x${APP_ID}`,
    deployer_address: '0x000000000000000000000000000000000000dEaD',
    rpc_endpoint: 'https://mainnet.base.org',
    encrypted_env_pubkey: null,
  },
  status: 'running',
  in_progress: false,
  progress: null,
  compose_hash: COMPOSE_HASH,
  gateway: { base_domain: 'dstack-base-prod7.phala.network', cname: null },
  services: [],
  endpoints: [{ app: 'https://a.example', instance: 'https://i.example' }],
  workspace: { object_type: 'workspace', id: 'wks_1', name: 'Team' },
  creator: { object_type: 'user', id: 'usr_1', username: 'alice', avatar_url: null },
  created_at: '2026-01-01T00:00:00Z',
  compose_file: null,
};

function structured465(extra: Record<string, unknown> = {}) {
  const details: { field: string; value: unknown }[] = [
    { field: 'compose_hash', value: COMPOSE_HASH },
    { field: 'app_id', value: APP_ID },
    { field: 'device_id', value: 'dev'.padEnd(64, '1') },
    { field: 'kms_info', value: KMS_INFO },
  ];
  return {
    error_code: 'ERR-01-005',
    message: 'Compose hash registration required',
    details,
    suggestions: ['Register the compose hash on chain, then retry with compose_hash and transaction_hash'],
    links: [],
    request_id: 'req-465',
    ...extra,
  };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

let srv: TestServer;
const seenErrors: PhalaApiError[] = [];

function client(overrides: Partial<ConstructorParameters<typeof PhalaCloudClient>[0]> = {}): PhalaCloudClient {
  return new PhalaCloudClient({ baseUrl: srv.baseUrl, apiKey: API_KEY, timeoutMs: 2000, ...overrides });
}

function assertNoKey(err: unknown): void {
  const e = err as Error;
  for (const [label, text] of [
    ['String', String(e)],
    ['stack', e.stack ?? ''],
    ['JSON', JSON.stringify(e)],
    ['inspect', inspect(e, { depth: 10, showHidden: true })],
  ] as const) {
    assert.ok(!text.includes(API_KEY), `API key leaked via ${label}`);
  }
}

async function expectError(p: Promise<unknown>, kind: PhalaApiErrorKind, status?: number): Promise<PhalaApiError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PhalaApiError, `expected a PhalaApiError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, `kind of ${String(caught)}`);
  assert.equal(caught.status, status);
  assertNoKey(caught);
  seenErrors.push(caught);
  return caught;
}

const ENC = 'ab'.repeat(80);

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv.close();
});
beforeEach(() => {
  srv.requests.length = 0;
});

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

describe('request shape', () => {
  it('sends the API key, version, JSON headers and user agent, and no request id unless given', async () => {
    srv.handle(reply(200, CVM));
    await client().getCvm('cvm_0123abcd');
    const h = srv.requests[0]!.headers;
    assert.equal(srv.requests[0]!.method, 'GET');
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/cvm_0123abcd');
    assert.equal(h['x-api-key'], API_KEY);
    assert.equal(h['x-phala-version'], '2026-06-23', 'the version @phala/cloud sources default to');
    assert.equal(h['authorization'], undefined);
    assert.equal(h['x-phala-workspace'], undefined);
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h['accept'], 'application/json');
    assert.equal(h['user-agent'], 'durable-cvm-envs/0.1.0');
    assert.equal(h['x-request-id'], undefined);
  });

  it('sends X-Request-ID when asked, the configured version and user agent', async () => {
    srv.handle(reply(200, CVM));
    await client({ apiVersion: '2026-05-22', userAgent: 'ops-tool/1' }).getCvm('cvm_0123abcd', { requestId: 'wf-42:attempt-3' });
    const h = srv.requests[0]!.headers;
    assert.equal(h['x-request-id'], 'wf-42:attempt-3');
    assert.equal(h['x-phala-version'], '2026-05-22');
    assert.equal(h['user-agent'], 'ops-tool/1');
  });

  it('bearer auth when no API key is given, the workspace header when set', async () => {
    const token = 'oidc.header.SECRET-token';
    srv.handle(reply(200, CVM));
    await client({ apiKey: undefined, bearerToken: token, workspace: ' wks_team ' }).getCvm('x');
    let h = srv.requests[0]!.headers;
    assert.equal(h['authorization'], `Bearer ${token}`);
    assert.equal(h['x-api-key'], undefined);
    assert.equal(h['x-phala-workspace'], 'wks_team');
    // The API key wins when both are configured, as in @phala/cloud's client.
    await client({ bearerToken: token }).getCvm('x');
    h = srv.requests[1]!.headers;
    assert.equal(h['x-api-key'], API_KEY);
    assert.equal(h['authorization'], undefined);
    assert.throws(() => new PhalaCloudClient({ baseUrl: srv.baseUrl }), /apiKey/);
    assert.throws(() => client({ workspace: 'two words' }), /workspace/);
    srv.handle(reply(401, { detail: `bad token ${token}` }));
    const err = await expectError(client({ apiKey: undefined, bearerToken: token }).getCvm('x'), 'auth', 401);
    assert.ok(!JSON.stringify({ m: err.message, d: err.details }).includes(token), 'the bearer token is redacted like the key');
  });

  it('pins the KMS calls: node-shaped 2026-05-22, contract-shaped 2026-06-23, whatever the client version', async () => {
    for (const apiVersion of ['2026-01-21', '2026-06-23'] as const) {
      srv.requests.length = 0;
      const c = client({ apiVersion });
      srv.handle(reply(200, { items: [KMS_INFO], total: 1, page: 1, page_size: 20, pages: 1 }));
      await c.listKms();
      srv.handle(reply(200, KMS_INFO));
      await c.getKms('kms_base_prod');
      srv.handle(reply(200, { public_key: 'aa', signature: 'bb' }));
      await c.getAppEnvEncryptPubkey('base-prod', APP_ID);
      const contract = {
        id: 'kc_1',
        slug: 'base-prod',
        label: 'Base',
        contract_address: '0xabc',
        chain_id: 8453,
        k256_pubkey: '02aa',
        ca_pubkey: null,
        node_count: 3,
      };
      srv.handle(reply(200, { items: [contract], total: 1, page: 1, page_size: 20, pages: 1 }));
      assert.equal((await c.listKmsContracts()).items[0]!.contract_address, '0xabc');
      srv.handle(reply(200, contract));
      assert.equal((await c.getKmsContract('base-prod')).node_count, 3);
      srv.handle(reply(200, CVM));
      await c.getCvm('x');
      assert.deepEqual(
        srv.requests.map((r) => r.headers['x-phala-version']),
        ['2026-05-22', '2026-05-22', '2026-05-22', '2026-06-23', '2026-06-23', apiVersion],
      );
    }
  });

  it('refuses an id that is not one path segment, before sending anything', async () => {
    // `..` would have turned PATCH /cvms/../envs into PATCH /envs.
    for (const bad of ['..', '.', 'a/b', 'a b', 'x?y', 'x#y', '%2e%2e', 'tab\t', 'x'.repeat(257)]) {
      const err = await expectError(client().getCvm(bad), 'invalid');
      assert.match(err.message, /id is not a valid id/);
      // '.' and '..' appear in the rule itself.
      assert.ok(bad.length < 3 || !err.message.includes(bad), 'the id is not echoed');
      await expectError(client().updateCvmEnvs({ id: bad, encrypted_env: ENC }), 'invalid');
      await expectError(client().getCvmOperations(bad), 'invalid');
    }
    await expectError(client().getAppEnvEncryptPubkey('kms/slug', `0x${APP_ID}`), 'invalid');
    await expectError(client().getAppEnvEncryptPubkey('kms_1', '../x'), 'invalid');
    assert.equal(srv.requests.length, 0);
    srv.handle(reply(200, CVM));
    await client().getCvm('app_0123:x.y~z-1');
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/app_0123%3Ax.y~z-1');
  });

  it('tolerates a trailing slash on baseUrl', async () => {
    srv.handle(reply(200, CVM));
    await client({ baseUrl: `${srv.baseUrl}/` }).getCvm('x');
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/x');
  });

  it('rejects bad constructor options without echoing the key', () => {
    assert.throws(() => new PhalaCloudClient({ baseUrl: 'ftp://x', apiKey: API_KEY }), /http or https/);
    assert.throws(() => new PhalaCloudClient({ baseUrl: 'not a url', apiKey: API_KEY }), /absolute/);
    assert.throws(() => new PhalaCloudClient({ baseUrl: srv.baseUrl, apiKey: '' }), /apiKey/);
    assert.throws(() => new PhalaCloudClient({ baseUrl: srv.baseUrl, apiVersion: '2025-10-28' as never, apiKey: API_KEY }), /apiVersion/);
    assert.throws(() => new PhalaCloudClient({ baseUrl: srv.baseUrl, apiKey: API_KEY, timeoutMs: 0 }), /timeoutMs/);
    let err: unknown;
    try {
      new PhalaCloudClient({ baseUrl: srv.baseUrl, apiKey: `${API_KEY}\r\nX-Evil: 1` });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof PhalaApiError && err.kind === 'invalid');
    assertNoKey(err);
  });

  it('rejects a malformed request id before sending', async () => {
    await expectError(client().getCvm('x', { requestId: 'bad\r\nid' }), 'invalid');
    assert.equal(srv.requests.length, 0);
  });

  it('keeps the key out of the client itself', () => {
    const c = client();
    assert.ok(!inspect(c, { showHidden: true, depth: 10 }).includes(API_KEY));
    assert.ok(!JSON.stringify(c).includes(API_KEY));
    assert.ok(!String(c).includes(API_KEY));
    assert.ok(!Object.values(c).some((v) => typeof v === 'string' && v.includes(API_KEY)));
  });
});

// ---------------------------------------------------------------------------
// Successful answers
// ---------------------------------------------------------------------------

describe('successful answers', () => {
  it('getCvm parses CVMInfoDetail and keeps unknown fields', async () => {
    const { in_progress: _omit, ...withoutInProgress } = CVM;
    srv.handle(reply(200, { ...withoutInProgress, brand_new_field: { x: 1 } }));
    const cvm = await client().getCvm('cvm_0123abcd');
    assert.equal(cvm.kms_type, 'base');
    assert.equal(cvm.kms_info?.chain_id, 8453);
    assert.equal(cvm.compose_hash, COMPOSE_HASH);
    assert.equal(cvm.in_progress, false);
    assert.deepEqual(cvm.brand_new_field, { x: 1 });
  });

  it('getCvm reads progress of a CVM being updated', async () => {
    srv.handle(
      reply(200, {
        ...CVM,
        kms_type: 'phala',
        kms_info: { encrypted_env_pubkey: 'ff'.repeat(32) },
        in_progress: true,
        progress: { target: 'running', started_at: '2026-01-01T00:00:00Z', correlation_id: 'corr-1' },
      }),
    );
    const cvm = await client().getCvm('cvm_0123abcd');
    assert.equal(cvm.in_progress, true);
    assert.equal(cvm.progress?.correlation_id, 'corr-1');
    assert.equal(cvm.kms_info?.encrypted_env_pubkey, 'ff'.repeat(32));
  });

  it('getComposeFile returns the decoded object untouched (order kept, no defaults added)', async () => {
    const text = '{"runner":"docker-compose","name":"app","allowed_envs":["B","A"],"docker_compose_file":"services: {}","x_custom":1}';
    srv.handle(reply(200, text));
    const compose = await client().getComposeFile('cvm_1');
    assert.equal(JSON.stringify(compose), text);
    assert.deepEqual(compose.allowed_envs, ['B', 'A']);
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/cvm_1/compose_file');
  });

  it('getAppEnvEncryptPubkey returns key, signature and the optional timestamp', async () => {
    srv.handle(reply(200, { public_key: 'aa'.repeat(32), signature: 'bb'.repeat(65), timestamp: 1767225600 }));
    const r = await client().getAppEnvEncryptPubkey('base-prod', APP_ID);
    assert.equal(r.timestamp, 1767225600);
    assert.equal(srv.requests[0]!.url, `/api/v1/kms/base-prod/pubkey/${APP_ID}`);
  });

  it('getAppEnvEncryptPubkey passes a kms_type word through (the CLI sends one) and refuses bad app ids without a request', async () => {
    srv.handle(reply(200, { public_key: 'aa', signature: 'bb' }));
    await client().getAppEnvEncryptPubkey('base', APP_ID);
    assert.equal(srv.requests[0]!.url, `/api/v1/kms/base/pubkey/${APP_ID}`);
    srv.requests.length = 0;
    await expectError(client().getAppEnvEncryptPubkey('base-prod', 'app_123'), 'invalid');
    await expectError(client().getAppEnvEncryptPubkey('', APP_ID), 'invalid');
    assert.equal(srv.requests.length, 0);
  });

  it('getKms and listKms', async () => {
    srv.handle(reply(200, KMS_INFO));
    assert.deepEqual(await client().getKms('kms_base_prod'), KMS_INFO);
    srv.handle(
      reply(200, { items: [KMS_INFO, { id: 'kms_p', slug: null, url: 'u', version: 'v' }], total: 2, page: 1, page_size: 50, pages: 1 }),
    );
    const list = await client().listKms({ pageSize: 50, isOnchain: true });
    assert.equal(list.items.length, 2);
    assert.equal(srv.requests[1]!.url, '/api/v1/kms?page_size=50&is_onchain=true');
  });

  it('getCvmOperations sends cursor and limit and parses the page', async () => {
    srv.handle(
      reply(200, {
        items: [
          {
            correlation_id: 'corr-1',
            operation_type: 'update_env',
            target_state: 'running',
            triggered_by: 1,
            started_at: '2026-01-01T00:00:00Z',
            completed_at: null,
            status: 'in_progress',
            error_message: null,
            sub_operations: ['stop', 'start'],
            events: [{ event_type: 'instance.update.start', timestamp: '2026-01-01T00:00:00Z', state: 'stopping' }],
            instance_name: 'my-app',
            compose_hash: COMPOSE_HASH,
          },
        ],
        next_cursor: 'c2',
        total: 3,
      }),
    );
    const page = await client().getCvmOperations('cvm_1', { cursor: 'c1', pageSize: 10 });
    assert.equal(page.items[0]!.correlation_id, 'corr-1');
    assert.equal(page.next_cursor, 'c2');
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/cvm_1/operations?limit=10&cursor=c1');
    await expectError(client().getCvmOperations('cvm_1', { limit: 501 }), 'invalid');
  });

  it('getCvmState', async () => {
    srv.handle(reply(200, { id: 'cvm_1', name: 'my-app', status: 'running', uptime: '1h', boot_progress: null }));
    const s = await client().getCvmState('cvm_1');
    assert.equal(s.status, 'running');
    assert.equal(srv.requests[0]!.url, '/api/v1/cvms/cvm_1/state');
  });

  it('getStatusBatch posts vm_uuids and parses the map', async () => {
    srv.handle(
      reply(200, {
        u1: {
          vm_uuid: 'u1',
          status: 'running',
          in_progress: true,
          correlation_id: 'corr-1',
          operation_type: 'update_env',
          events: [{ event: 'boot', body: 'ok' }],
        },
        u2: { vm_uuid: 'u2', status: 'stopped' },
      }),
    );
    const m = await client().getStatusBatch(['u1', 'u2']);
    assert.equal(m.u1?.correlation_id, 'corr-1');
    assert.equal(m.u1?.events?.[0]?.timestamp, 0);
    assert.equal(m.u2?.in_progress, false);
    assert.equal(srv.requests[0]!.method, 'POST');
    assert.equal(srv.requests[0]!.url, '/api/v1/status/batch');
    assert.deepEqual(JSON.parse(srv.requests[0]!.body), { vm_uuids: ['u1', 'u2'] });
  });
});

// ---------------------------------------------------------------------------
// updateCvmEnvs
// ---------------------------------------------------------------------------

describe('updateCvmEnvs', () => {
  const accepted = { status: 'in_progress', message: 'Update started', correlation_id: 'corr-7', allowed_envs_changed: true };

  it('202 → in_progress; phase 1 body has no hashes', async () => {
    srv.handle(reply(202, accepted));
    const r = await client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, env_keys: ['A', 'B'] }, { requestId: 'rid-1' });
    assert.deepEqual(r, accepted);
    const req = srv.requests[0]!;
    assert.equal(req.method, 'PATCH');
    assert.equal(req.url, '/api/v1/cvms/cvm_1/envs');
    assert.equal(req.headers['x-request-id'], 'rid-1');
    assert.deepEqual(JSON.parse(req.body), { encrypted_env: ENC, env_keys: ['A', 'B'] });
  });

  it('phase 2 puts compose_hash and transaction_hash in the body', async () => {
    srv.handle(reply(202, { ...accepted, allowed_envs_changed: false }));
    const tx = `0x${'12'.repeat(32)}`;
    const r = await client().updateCvmEnvs({
      id: 'cvm_1',
      encrypted_env: ENC,
      env_keys: ['A'],
      compose_hash: COMPOSE_HASH,
      transaction_hash: tx,
    });
    assert.equal(r.status, 'in_progress');
    const req = srv.requests[0]!;
    assert.deepEqual(JSON.parse(req.body), { encrypted_env: ENC, env_keys: ['A'], compose_hash: COMPOSE_HASH, transaction_hash: tx });
    assert.equal(req.headers['x-compose-hash'], undefined);
  });

  it('validates arguments before sending', async () => {
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: 'not hex' }), 'invalid');
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: 'abc' }), 'invalid');
    await expectError(client().updateCvmEnvs({ id: '', encrypted_env: ENC }), 'invalid');
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, compose_hash: COMPOSE_HASH }), 'invalid');
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, env_keys: [''] }), 'invalid');
    assert.equal(srv.requests.length, 0);
  });

  it('465 structured (error_code at top level) → precondition_required', async () => {
    srv.handle(reply(465, structured465()));
    const r = await client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, env_keys: ['A'] });
    assert.equal(r.status, 'precondition_required');
    if (r.status !== 'precondition_required') return;
    assert.equal(r.message, 'Compose hash registration required');
    assert.equal(r.compose_hash, COMPOSE_HASH);
    assert.equal(r.app_id, APP_ID);
    assert.equal(r.device_id, 'dev'.padEnd(64, '1'));
    assert.deepEqual(r.kms_info, KMS_INFO);
  });

  it('465 detail-wrapped → precondition_required', async () => {
    srv.handle(reply(465, { detail: structured465() }));
    const r = await client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, env_keys: ['A'] });
    assert.equal(r.status, 'precondition_required');
    if (r.status === 'precondition_required') assert.equal(r.kms_info.slug, 'base-prod');
  });

  it('465 without device_id or message gets the SDK defaults', async () => {
    const body = structured465();
    body.details = body.details.filter((d) => d.field !== 'device_id');
    srv.handle(reply(465, { detail: { ...body, message: '' } }));
    const r = await client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC });
    assert.equal(r.status, 'precondition_required');
    if (r.status !== 'precondition_required') return;
    assert.equal(r.device_id, '');
    assert.equal(r.message, 'Compose hash verification required');
  });

  it('the older flat 465 (Python SDK form) is read too, with only kms_info.id required', async () => {
    srv.handle(
      reply(465, { message: 'need hash', compose_hash: COMPOSE_HASH, app_id: APP_ID, device_id: 'dev-1', kms_info: { id: 'kms_legacy' } }),
    );
    const r = await client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC });
    assert.equal(r.status, 'precondition_required');
    if (r.status !== 'precondition_required') return;
    assert.equal(r.compose_hash, COMPOSE_HASH);
    assert.equal(r.device_id, 'dev-1');
    assert.equal(r.kms_info.id, 'kms_legacy');
    srv.handle(reply(465, { compose_hash: COMPOSE_HASH, app_id: APP_ID, kms_info: { slug: 'no-id' } }));
    const err = await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 465);
    assert.deepEqual(
      err.details.map((d) => d.field),
      ['kms_info.id'],
    );
  });

  it('465 in a shape the SDK ignores → bad_response', async () => {
    srv.handle(reply(465, { detail: { compose_hash: COMPOSE_HASH, app_id: APP_ID, device_id: 'd', kms_info: KMS_INFO } }));
    const flat = await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 465);
    assert.match(flat.message, /465/);
    const { error_code: _e, ...noCode } = structured465();
    srv.handle(reply(465, noCode));
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 465);
    srv.handle(reply(465, 'not json'));
    await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 465);
  });

  it('465 whose kms_info lacks id/url/version → bad_response naming the paths', async () => {
    const body = structured465();
    body.details = body.details.map((d) => (d.field === 'kms_info' ? { field: 'kms_info', value: { slug: 'x', chain_id: 8453 } } : d));
    srv.handle(reply(465, body));
    const err = await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 465);
    assert.equal(err.errorCode, 'ERR-01-005');
    assert.equal(err.requestId, 'req-465');
    assert.deepEqual(err.details.map((d) => d.field).sort(), ['kms_info.id', 'kms_info.url', 'kms_info.version']);
  });

  it('466/467/468 map to their kinds with the backend code', async () => {
    const cases: [number, string, PhalaApiErrorKind, boolean][] = [
      [466, 'ERR-01-006', 'hash_expired', false],
      [467, 'ERR-01-007', 'tx_not_verified', true],
      [468, 'ERR-01-008', 'hash_not_allowed', false],
    ];
    for (const [status, code, kind, retryable] of cases) {
      srv.handle(
        reply(status, {
          error_code: code,
          message: `m${status}`,
          details: [{ field: 'compose_hash', value: COMPOSE_HASH }],
          suggestions: [],
          links: [],
          request_id: `r${status}`,
        }),
      );
      const err = await expectError(
        client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC, compose_hash: COMPOSE_HASH, transaction_hash: '0x01' }),
        kind,
        status,
      );
      assert.equal(err.errorCode, code);
      assert.equal(err.message, `m${status}`);
      assert.equal(err.requestId, `r${status}`);
      assert.equal(err.retryable, retryable);
      assert.deepEqual(err.details, [{ field: 'compose_hash', value: COMPOSE_HASH }]);
    }
  });

  it('a 202 missing correlation_id → bad_response', async () => {
    srv.handle(reply(202, { status: 'in_progress', message: 'ok', allowed_envs_changed: false }));
    const err = await expectError(client().updateCvmEnvs({ id: 'cvm_1', encrypted_env: ENC }), 'bad_response', 202);
    assert.deepEqual(err.details, [{ field: 'correlation_id', message: 'invalid_type' }]);
  });
});

// ---------------------------------------------------------------------------
// Error statuses
// ---------------------------------------------------------------------------

describe('error statuses', () => {
  it('401 and 403 → auth', async () => {
    srv.handle(reply(401, { detail: 'Not authenticated' }));
    const e401 = await expectError(client().getCvm('x'), 'auth', 401);
    assert.equal(e401.message, 'Not authenticated');
    srv.handle(reply(403, { detail: { error_code: 'ERR-03-003', message: 'CVM not in workspace', details: [] } }));
    const e403 = await expectError(client().getCvm('x'), 'auth', 403);
    assert.equal(e403.errorCode, 'ERR-03-003');
  });

  it('404 → not_found', async () => {
    srv.handle(reply(404, { detail: 'KMS not found' }));
    const e = await expectError(client().getKms('nope'), 'not_found', 404);
    assert.equal(e.message, 'KMS not found');
    assert.equal(e.retryable, false);
  });

  it('409 → conflict, retryable', async () => {
    srv.handle(reply(409, { error_code: 'ERR-03-004', message: 'Another operation in progress', details: [], request_id: 'r409' }));
    const e = await expectError(client().updateCvmEnvs({ id: 'x', encrypted_env: ENC }), 'conflict', 409);
    assert.equal(e.retryable, true);
    assert.equal(e.requestId, 'r409');
  });

  it('422 FastAPI validation list → invalid with joined messages', async () => {
    srv.handle(
      reply(422, {
        detail: [
          { loc: ['body', 'encrypted_env'], msg: 'Field required', type: 'missing', input: {} },
          { loc: ['path', 'cvm_id'], msg: 'String too short', type: 'string_too_short' },
        ],
      }),
    );
    const e = await expectError(client().updateCvmEnvs({ id: 'x', encrypted_env: ENC }), 'invalid', 422);
    assert.equal(e.message, 'encrypted_env: Field required; cvm_id: String too short');
    assert.deepEqual(
      e.details.map((d) => d.field),
      ['encrypted_env', 'cvm_id'],
    );
  });

  it('422 structured → invalid with code and details', async () => {
    srv.handle(
      reply(422, {
        error_code: 'ERR-02-008',
        message: 'Invalid request',
        details: [{ field: 'env_keys', value: ['1BAD'], message: 'bad key' }],
      }),
    );
    const e = await expectError(client().updateCvmEnvs({ id: 'x', encrypted_env: ENC }), 'invalid', 422);
    assert.equal(e.errorCode, 'ERR-02-008');
    assert.deepEqual(e.details, [{ field: 'env_keys', value: ['1BAD'], message: 'bad key' }]);
  });

  it('400 → invalid', async () => {
    srv.handle(reply(400, { detail: 'Invalid app ID format' }));
    await expectError(client().getAppEnvEncryptPubkey('base-prod', APP_ID), 'invalid', 400);
  });

  it('429 with Retry-After seconds → rate_limited', async () => {
    srv.handle(reply(429, { detail: 'Too many requests' }, { 'retry-after': '17' }));
    const e = await expectError(client().getCvm('x'), 'rate_limited', 429);
    assert.equal(e.retryAfterMs, 17_000);
    assert.equal(e.retryable, true);
  });

  it('429 with Retry-After HTTP date → rate_limited', async () => {
    const at = new Date(Date.now() + 20_000).toUTCString();
    srv.handle(reply(429, { detail: 'Too many requests' }, { 'retry-after': at }));
    const e = await expectError(client().getCvm('x'), 'rate_limited', 429);
    assert.ok(e.retryAfterMs !== undefined && e.retryAfterMs > 15_000 && e.retryAfterMs <= 20_000, String(e.retryAfterMs));
  });

  it('500 → transient', async () => {
    srv.handle(reply(500, { detail: 'KMS configuration or RPC error' }));
    const e = await expectError(client().updateCvmEnvs({ id: 'x', encrypted_env: ENC }), 'transient', 500);
    assert.equal(e.message, 'KMS configuration or RPC error');
    assert.equal(e.retryable, true);
  });

  it('502 with an HTML page and 503 with Retry-After → transient', async () => {
    srv.handle((_req, res) => {
      res.writeHead(502, 'Bad Gateway', { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
    });
    const e502 = await expectError(client().getCvm('x'), 'transient', 502);
    assert.equal(e502.message, 'HTTP 502 Bad Gateway (non-JSON body)');
    srv.handle(reply(503, { detail: 'Node under maintenance' }, { 'retry-after': '5' }));
    const e503 = await expectError(client().getCvm('x'), 'transient', 503);
    assert.equal(e503.retryAfterMs, 5000);
  });

  it('malformed JSON: from a 5xx → transient, from a 2xx → bad_response', async () => {
    srv.handle(reply(500, '{"detail": "truncat'));
    await expectError(client().getCvm('x'), 'transient', 500);
    srv.handle(reply(200, '{"id": "cvm_1", '));
    const e = await expectError(client().getCvm('x'), 'bad_response', 200);
    assert.match(e.message, /not valid JSON/);
    srv.handle(reply(200, ''));
    await expectError(client().getCvm('x'), 'bad_response', 200);
  });

  it('a 2xx body failing its schema → bad_response with paths and codes, never values', async () => {
    const secretish = 'VALUE-THAT-MUST-NOT-APPEAR';
    srv.handle(reply(200, { ...CVM, kms_type: secretish, status: 987654321, gateway: undefined }));
    const e = await expectError(client().getCvm('x'), 'bad_response', 200);
    assert.equal(e.retryable, false);
    assert.deepEqual(e.details.map((d) => d.field).sort(), ['gateway', 'kms_type', 'status']);
    for (const text of [String(e), JSON.stringify(e), inspect(e, { depth: 10 })]) {
      assert.ok(!text.includes(secretish));
      assert.ok(!text.includes('987654321'));
    }
  });

  it('a redirect is not followed (the key must not travel to the Location)', async () => {
    const other = await startServer();
    try {
      other.handle(reply(200, CVM));
      srv.handle((_req, res) => {
        res.writeHead(307, { location: `${other.baseUrl}/cvms/x` }).end();
      });
      const e = await expectError(client().getCvm('x'), 'bad_response', 307);
      assert.match(e.message, /redirect/);
      assert.equal(other.requests.length, 0);
    } finally {
      await other.close();
    }
  });

  it('a key echoed by the server is scrubbed from the error', async () => {
    srv.handle(
      reply(401, {
        error_code: 'ERR-06-002',
        message: `API key ${API_KEY} is revoked`,
        details: [{ field: 'X-API-Key', value: API_KEY }],
        request_id: 'r401',
      }),
    );
    const e = await expectError(client().getCvm('x'), 'auth', 401);
    assert.equal(e.message, 'API key [REDACTED] is revoked');
  });
});

// ---------------------------------------------------------------------------
// Transport failures
// ---------------------------------------------------------------------------

describe('transport failures', () => {
  it('a hung server → transient timeout naming the limit', async () => {
    srv.handle(() => {
      /* never answers */
    });
    const started = Date.now();
    const e = await expectError(client({ timeoutMs: 150 }).getCvm('x', { requestId: 'rid-timeout' }), 'transient');
    assert.match(e.message, /timed out after 150 ms/);
    assert.equal(e.requestId, 'rid-timeout');
    assert.ok(Date.now() - started < 1500);
  });

  it('a body that stalls mid-way → transient timeout', async () => {
    srv.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id": "cvm_1", ');
    });
    const e = await expectError(client({ timeoutMs: 150 }).getCvm('x'), 'transient');
    assert.match(e.message, /timed out/);
  });

  it('a closed port → transient network error', async () => {
    const dead = await startServer();
    const baseUrl = dead.baseUrl;
    await dead.close();
    const e = await expectError(new PhalaCloudClient({ baseUrl, apiKey: API_KEY }).getCvm('x'), 'transient');
    assert.match(e.message, /network error/);
    assert.match(e.message, /ECONNREFUSED/);
  });

  it('an injected fetch whose error carries the request is reduced to its message', async () => {
    const leaky: typeof fetch = async (_input, init) => {
      throw Object.assign(new Error('socket hang up'), { request: { headers: init?.headers } });
    };
    const e = await expectError(client({ fetch: leaky }).getCvm('x'), 'transient');
    assert.equal(e.message, 'network error: socket hang up');
  });

  it('caller cancellation rethrows the abort reason', async () => {
    srv.handle(() => {
      /* never answers */
    });
    const ac = new AbortController();
    const reason = new Error('activity cancelled');
    setTimeout(() => ac.abort(reason), 30);
    await assert.rejects(client({ timeoutMs: 5000 }).getCvm('x', { signal: ac.signal }), (err) => err === reason);
    await assert.rejects(client().getCvm('x', { signal: AbortSignal.abort(reason) }), (err) => err === reason);
  });
});

// ---------------------------------------------------------------------------
// Differential check against the official SDK
// ---------------------------------------------------------------------------

describe('official SDK (@phala/cloud 0.2.9) agrees on 465 forms', () => {
  const sdk = () => createClient({ apiKey: API_KEY, baseURL: srv.baseUrl });
  const request = { id: 'cvm_1', encrypted_env: ENC, env_keys: ['A'] };

  const recognised: [string, unknown][] = [
    ['structured', structured465()],
    ['detail-wrapped', { detail: structured465() }],
    ['detail-wrapped without error_code', { detail: { message: 'register', details: structured465().details } }],
  ];
  for (const [label, body] of recognised) {
    it(`${label}: both return precondition_required with the same payload`, async () => {
      srv.handle(reply(465, body));
      const ours = await client().updateCvmEnvs(request);
      const theirs = (await sdk().updateCvmEnvs(request)) as Record<string, unknown>;
      assert.equal(ours.status, 'precondition_required');
      assert.equal(theirs.status, 'precondition_required');
      if (ours.status !== 'precondition_required') return;
      for (const k of ['message', 'compose_hash', 'app_id', 'device_id'] as const) {
        assert.equal(ours[k], theirs[k], k);
      }
      const theirKms = theirs.kms_info as Record<string, unknown>;
      for (const k of Object.keys(KMS_INFO)) assert.equal(ours.kms_info[k], theirKms[k], `kms_info.${k}`);
      // Both clients sent the same body.
      const [a, b] = srv.requests.slice(-2);
      assert.deepEqual(JSON.parse(a!.body), JSON.parse(b!.body));
    });
  }

  const ignored: [string, unknown][] = [
    ['flat detail object', { detail: { compose_hash: COMPOSE_HASH, app_id: APP_ID, device_id: 'd', kms_info: KMS_INFO } }],
    ['top level without error_code', { message: 'm', details: structured465().details }],
    ['details without app_id', { ...structured465(), details: structured465().details.filter((d) => d.field !== 'app_id') }],
  ];
  for (const [label, body] of ignored) {
    it(`${label}: neither treats it as precondition_required`, async () => {
      srv.handle(reply(465, body));
      await expectError(client().updateCvmEnvs(request), 'bad_response', 465);
      let theirs: unknown;
      try {
        theirs = await sdk().updateCvmEnvs(request);
      } catch (err) {
        theirs = err;
      }
      assert.ok(!(theirs && typeof theirs === 'object' && (theirs as { status?: unknown }).status === 'precondition_required'));
      assert.equal((theirs as { status?: unknown }).status, 465);
    });
  }

  it('202: both return the same in_progress object', async () => {
    const body = { status: 'in_progress', message: 'ok', correlation_id: 'corr-9', allowed_envs_changed: true };
    srv.handle(reply(202, body));
    assert.deepEqual(await client().updateCvmEnvs(request), body);
    assert.deepEqual(await sdk().updateCvmEnvs(request), body);
  });

  it('readPreconditionRequired agrees with the client on every form above', () => {
    for (const [, body] of recognised) assert.equal(readPreconditionRequired(body).ok, true);
    for (const [, body] of ignored) assert.equal(readPreconditionRequired(body).ok, false);
  });
});

describe('no error produced in this file carries the API key', () => {
  it('checked every collected error again', () => {
    assert.ok(seenErrors.length > 30, `only ${seenErrors.length} errors collected`);
    for (const e of seenErrors) assertNoKey(e);
  });
});

describe('response size cap', () => {
  it('a body over maxResponseBytes is refused as bad_response, declared or streamed without a length', async () => {
    srv.handle(reply(200, { padding: 'x'.repeat(5000) }));
    const declared = await expectError(client({ maxResponseBytes: 4096 }).getCvm('x'), 'bad_response', 200);
    assert.match(declared.message, /body is larger than 4096 bytes/);
    assert.equal(declared.retryable, false);

    // Chunked, no Content-Length: counted while read, and the read stops at the cap.
    let written = 0;
    srv.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const tick = setInterval(() => {
        if (res.destroyed || written > 1_000_000) {
          clearInterval(tick);
          res.end();
          return;
        }
        res.write('x'.repeat(1024));
        written += 1024;
      }, 1);
    });
    const streamed = await expectError(client({ maxResponseBytes: 4096 }).getCvm('x'), 'bad_response', 200);
    assert.match(streamed.message, /body is larger than 4096 bytes/);
    assert.ok(written < 1_000_000, `the server wrote ${written} bytes before the client stopped reading`);
  });

  it('a body within the cap is read as before, and a silly cap is refused', async () => {
    srv.handle(reply(200, CVM));
    assert.equal((await client({ maxResponseBytes: 64 * 1024 }).getCvm('x')).id, CVM.id);
    assert.throws(() => client({ maxResponseBytes: 10 }), /maxResponseBytes must be an integer of at least 1024/);
  });
});
