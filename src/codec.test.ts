import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { gcm as nobleGcm } from '@noble/ciphers/aes.js';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect, promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import proto from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import {
  AesGcmPayloadCodec,
  createDataConverter,
  ENCRYPTED_ENCODING,
  generatePayloadKeySpec,
  KEY_ID_METADATA,
  parsePayloadKeys,
  PayloadDecryptionError,
  PayloadKeyConfigError,
  UnencryptedPayloadError,
} from './codec.ts';
import { startCodecServer } from './codec-server.ts';
import type { EchoActivities, echoWorkflow, failingEchoWorkflow } from '../test/fixtures/echo-workflow.ts';

const text = new TextEncoder();
const fromText = new TextDecoder();

function keySpec(id: string, bytes = randomBytes(32)): { spec: string; key: Buffer } {
  return { spec: `${id}:${bytes.toString('base64')}`, key: bytes };
}

function codecFor(spec: string): AesGcmPayloadCodec {
  return new AesGcmPayloadCodec(parsePayloadKeys(spec));
}

function metaText(p: Payload, name: string): string | undefined {
  const v = p.metadata?.[name];
  return v ? fromText.decode(v) : undefined;
}

function containsBytes(haystack: Uint8Array, needle: string): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle, 'utf8')) >= 0;
}

type JsonPayload = { metadata: Record<string, string>; data?: string };

const SECRET = 'hunter2-super-secret-env-value';

function samplePayloads(): Payload[] {
  return [
    defaultPayloadConverter.toPayload({ DATABASE_URL: `postgres://app:${SECRET}@db/prod` }),
    defaultPayloadConverter.toPayload(new Uint8Array([0, 1, 2, 255])),
    defaultPayloadConverter.toPayload(undefined),
    defaultPayloadConverter.toPayload('x'.repeat(100_000)),
  ];
}

function assertSamePayload(actual: Payload, expected: Payload): void {
  assert.deepEqual(Object.keys(actual.metadata ?? {}).sort(), Object.keys(expected.metadata ?? {}).sort());
  for (const [k, v] of Object.entries(expected.metadata ?? {})) {
    assert.deepEqual(Buffer.from(actual.metadata![k]!), Buffer.from(v));
  }
  assert.deepEqual(Buffer.from(actual.data ?? []), Buffer.from(expected.data ?? []));
}

describe('AesGcmPayloadCodec', () => {
  it('round-trips payloads of every shape', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const original = samplePayloads();
    const encoded = await codec.encode(original);
    assert.equal(encoded.length, original.length);
    const decoded = await codec.decode(encoded);
    for (const [i, p] of original.entries()) assertSamePayload(decoded[i]!, p);
    assert.equal(defaultPayloadConverter.fromPayload<{ DATABASE_URL: string }>(decoded[0]!).DATABASE_URL.includes(SECRET), true);
    assert.deepEqual(await codec.encode([]), []);
  });

  it('marks every payload as encrypted with the key id and leaves no plaintext or original metadata', async () => {
    const codec = codecFor(keySpec('prod-2025').spec);
    const original = samplePayloads();
    const encoded = await codec.encode(original);
    for (const [i, p] of encoded.entries()) {
      assert.deepEqual(Object.keys(p.metadata ?? {}).sort(), ['encoding', KEY_ID_METADATA].sort());
      assert.equal(metaText(p, 'encoding'), ENCRYPTED_ENCODING);
      assert.equal(metaText(p, KEY_ID_METADATA), 'prod-2025');
      const inner = proto.temporal.api.common.v1.Payload.encode(original[i]!).finish();
      assert.equal(p.data!.length, 12 + inner.length + 16, 'nonce ‖ ciphertext ‖ tag');
      assert.equal(containsBytes(p.data!, 'json/plain'), false);
    }
    assert.equal(containsBytes(encoded[0]!.data!, SECRET), false);
    assert.equal(containsBytes(encoded[0]!.data!, 'postgres://'), false);
  });

  it('writes the documented wire format: another AES-GCM implementation reads ours, and ours reads its', async () => {
    // noble's AES-GCM stands in for any reader of the format (and wrote the histories recorded
    // before the codec moved to node:crypto): nonce(12) ‖ ciphertext ‖ tag(16), key id as AAD.
    const { spec, key } = keySpec('k-compat');
    const codec = codecFor(spec);
    const aad = text.encode('k-compat');
    for (const original of samplePayloads()) {
      const [ours] = await codec.encode([original]);
      const inner = nobleGcm(key, ours!.data!.subarray(0, 12), aad).decrypt(ours!.data!.subarray(12));
      assertSamePayload(proto.temporal.api.common.v1.Payload.decode(inner), original);

      const nonce = randomBytes(12);
      const sealed = nobleGcm(key, nonce, aad).encrypt(proto.temporal.api.common.v1.Payload.encode(original).finish());
      const theirs: Payload = {
        metadata: { encoding: text.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: aad },
        data: Buffer.concat([nonce, sealed]),
      };
      assertSamePayload((await codec.decode([theirs]))[0]!, original);
    }
  });

  it('uses a fresh nonce for every payload', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const p = defaultPayloadConverter.toPayload(SECRET);
    const [a, b] = await codec.encode([p, p]);
    assert.notDeepEqual(Buffer.from(a!.data!.subarray(0, 12)), Buffer.from(b!.data!.subarray(0, 12)));
    assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(b!.data!));
  });

  it('refuses payloads that are not encrypted, naming the encoding and the expected key ids, never the data', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const plain = defaultPayloadConverter.toPayload({ SECRET: 'hunter2-plain' });
    const bare: Payload = { data: text.encode('hunter2-raw') };
    for (const p of [plain, bare]) {
      await assert.rejects(codec.decode([p]), (err: Error) => {
        assert.ok(err instanceof UnencryptedPayloadError && err instanceof PayloadDecryptionError);
        assert.match(err.message, /not encrypted/);
        assert.match(err.message, /key id k1/);
        assert.match(err.message, /PAYLOAD_ENCRYPTION_KEYS/);
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      });
    }
    await assert.rejects(codec.decode([plain]), /encoding "json\/plain"/);
  });

  it('accepts payloads that carry nothing (empty, or null with no data), which need no encryption', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const empty: Payload = {};
    const nul: Payload = { metadata: { encoding: text.encode('binary/null') } };
    const decoded = await codec.decode([empty, nul]);
    assert.equal(decoded[0], empty);
    assert.equal(decoded[1], nul);
  });

  it('with acceptUnencrypted, passes unencrypted payloads through (development, and the codec server)', async () => {
    const codec = new AesGcmPayloadCodec(parsePayloadKeys(keySpec('k1').spec), { acceptUnencrypted: true });
    const plain = defaultPayloadConverter.toPayload({ hello: 'world' });
    const bare: Payload = { data: text.encode('raw') };
    const decoded = await codec.decode([plain, bare]);
    assert.equal(decoded[0], plain);
    assert.equal(decoded[1], bare);
  });

  it('decodes payloads encrypted with an old key after rotation, and encrypts new ones with the new key', async () => {
    const old = keySpec('k1');
    const fresh = keySpec('k2');
    const before = codecFor(old.spec);
    const [oldPayload] = await before.encode([defaultPayloadConverter.toPayload(SECRET)]);

    const rotated = codecFor(`${fresh.spec},${old.spec}`);
    assert.equal(rotated.encryptionKeyId, 'k2');
    assert.deepEqual(rotated.keyIds, ['k2', 'k1']);
    const [decodedOld] = await rotated.decode([oldPayload!]);
    assert.equal(defaultPayloadConverter.fromPayload(decodedOld!), SECRET);

    const [newPayload] = await rotated.encode([defaultPayloadConverter.toPayload('after rotation')]);
    assert.equal(metaText(newPayload!, KEY_ID_METADATA), 'k2');
    // The old key alone cannot read new payloads: the new key really is in use.
    await assert.rejects(before.decode([newPayload!]), PayloadDecryptionError);
    const [decodedNew] = await codecFor(fresh.spec).decode([newPayload!]);
    assert.equal(defaultPayloadConverter.fromPayload(decodedNew!), 'after rotation');
  });

  it('names the unknown key id, never the key', async () => {
    const writer = keySpec('retired-key');
    const reader = keySpec('current');
    const [p] = await codecFor(writer.spec).encode([defaultPayloadConverter.toPayload(SECRET)]);
    await assert.rejects(codecFor(reader.spec).decode([p!]), (err: unknown) => {
      assert.ok(err instanceof PayloadDecryptionError);
      assert.match(err.message, /unknown key id "retired-key"/);
      assert.match(err.message, /current/);
      assert.equal(err.keyId, 'retired-key');
      for (const k of [writer.key, reader.key]) {
        assert.equal(err.message.includes(k.toString('base64')), false);
        assert.equal(err.message.includes(k.toString('hex')), false);
      }
      assert.equal(err.message.includes(SECRET), false);
      return true;
    });
  });

  it('rejects a payload encrypted under the same id with a different key', async () => {
    const [p] = await codecFor(keySpec('k1').spec).encode([defaultPayloadConverter.toPayload(SECRET)]);
    await assert.rejects(codecFor(keySpec('k1').spec).decode([p!]), /failed authentication with key id "k1"/);
  });

  it('detects tampering with nonce, ciphertext or tag', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const [p] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const len = p!.data!.length;
    for (const index of [0, 11, 12, Math.floor(len / 2), len - 16, len - 1]) {
      const data = Uint8Array.from(p!.data!);
      data[index] = data[index]! ^ 0x01;
      await assert.rejects(codec.decode([{ ...p, data }]), PayloadDecryptionError, `flipped byte ${index}`);
    }
    await assert.rejects(codec.decode([{ ...p, data: p!.data!.subarray(0, len - 1) }]), PayloadDecryptionError);
    await assert.rejects(codec.decode([{ ...p, data: p!.data!.subarray(0, 20) }]), /too short/);
  });

  it('binds the key id: relabelling a payload fails even when both ids hold the same key', async () => {
    const shared = randomBytes(32);
    const codec = codecFor(`a:${shared.toString('base64')},b:${shared.toString('hex')}`);
    const [p] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    assert.equal(metaText(p!, KEY_ID_METADATA), 'a');
    const relabelled: Payload = { ...p, metadata: { ...p!.metadata, [KEY_ID_METADATA]: text.encode('b') } };
    await assert.rejects(codec.decode([relabelled]), /failed authentication with key id "b"/);
    const [ok] = await codec.decode([p!]);
    assert.equal(defaultPayloadConverter.fromPayload(ok!), SECRET);
  });

  it('rejects an encrypted payload without a key id', async () => {
    const codec = codecFor(keySpec('k1').spec);
    const [p] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const { [KEY_ID_METADATA]: _dropped, ...rest } = p!.metadata!;
    await assert.rejects(codec.decode([{ ...p, metadata: rest }]), /no "encryption-key-id" metadata/);
  });

  it('keeps key bytes out of inspection output', () => {
    const { spec, key } = keySpec('k1');
    const shown = inspect(codecFor(spec), { depth: 10, showHidden: true });
    assert.equal(shown.includes(key.toString('hex')), false);
    assert.doesNotMatch(shown, /Uint8Array/);
  });

  it('refuses invalid key sets in the constructor', () => {
    assert.throws(() => new AesGcmPayloadCodec([]), PayloadKeyConfigError);
    assert.throws(() => new AesGcmPayloadCodec([{ id: 'k1', key: new Uint8Array(16) }]), /"k1" must be exactly 32 bytes/);
    const key = new Uint8Array(randomBytes(32));
    assert.throws(
      () =>
        new AesGcmPayloadCodec([
          { id: 'k1', key },
          { id: 'k1', key },
        ]),
      /duplicate/,
    );
    assert.throws(() => new AesGcmPayloadCodec([{ id: 'bad id', key }]), PayloadKeyConfigError);
  });
});

describe('parsePayloadKeys', () => {
  const b64 = randomBytes(32);

  it('parses base64, URL-safe base64 without padding, and hex with or without 0x, in order', () => {
    const urlSafe = b64.toString('base64url');
    const keys = parsePayloadKeys(
      ` k3:${b64.toString('base64')} , k2:${urlSafe},k1:0x${b64.toString('hex')},k0:${b64.toString('hex').toUpperCase()}`,
    );
    assert.deepEqual(
      keys.map((k) => k.id),
      ['k3', 'k2', 'k1', 'k0'],
    );
    for (const k of keys) assert.deepEqual(Buffer.from(k.key), b64);
  });

  it('rejects an empty spec', () => {
    assert.throws(() => parsePayloadKeys(''), /empty/);
    assert.throws(() => parsePayloadKeys('   '), /empty/);
    assert.throws(() => parsePayloadKeys(`k1:${b64.toString('base64')},`), /entry #2 is empty/);
  });

  it('rejects a key of the wrong length, naming the key id but not the key', () => {
    const short = randomBytes(16).toString('base64');
    assert.throws(
      () => parsePayloadKeys(`ok:${b64.toString('base64')},short-one:${short}`),
      (err: unknown) => {
        assert.ok(err instanceof PayloadKeyConfigError);
        assert.match(err.message, /"short-one" is 16 bytes/);
        assert.equal(err.message.includes(short), false);
        return true;
      },
    );
    assert.throws(() => parsePayloadKeys(`long:${randomBytes(33).toString('base64')}`), /"long" is 33 bytes/);
    assert.throws(() => parsePayloadKeys(`hex:${randomBytes(31).toString('hex')}`), /"hex"/);
    assert.throws(() => parsePayloadKeys('nothing:'), /"nothing" is empty/);
  });

  it('rejects text that is neither hex nor base64', () => {
    assert.throws(() => parsePayloadKeys(`k1:${b64.toString('base64').slice(0, 40)}!!!!`), /"k1" is neither/);
    assert.throws(() => parsePayloadKeys('k1:not base64 at all'), /"k1" is neither/);
    assert.throws(() => parsePayloadKeys(`k1:${'0'.repeat(64)}`), /"k1" is all zeros/);
  });

  it('rejects duplicate ids', () => {
    assert.throws(() => parsePayloadKeys(`k1:${b64.toString('base64')},k1:${randomBytes(32).toString('base64')}`), /duplicate key id "k1"/);
  });

  it('rejects an entry without a colon without echoing it (it is probably a bare key)', () => {
    const bare = b64.toString('base64');
    assert.throws(
      () => parsePayloadKeys(`k1:${bare},${bare}`),
      (err: unknown) => {
        assert.ok(err instanceof PayloadKeyConfigError);
        assert.match(err.message, /entry #2 is missing the "id:" prefix/);
        assert.equal(err.message.includes(bare), false);
        return true;
      },
    );
  });

  it('rejects an empty or malformed id', () => {
    assert.throws(() => parsePayloadKeys(`:${b64.toString('base64')}`), /entry #1 has an invalid key id/);
    assert.throws(() => parsePayloadKeys(`a b:${b64.toString('base64')}`), /invalid key id/);
  });
});

describe('generatePayloadKeySpec and createDataConverter', () => {
  it('generates a parseable spec with a fresh 32-byte key', () => {
    const a = generatePayloadKeySpec();
    const b = generatePayloadKeySpec('local-2');
    const [ka] = parsePayloadKeys(a);
    const [kb] = parsePayloadKeys(b);
    assert.equal(ka!.id, 'k1');
    assert.equal(kb!.id, 'local-2');
    assert.equal(ka!.key.length, 32);
    assert.notDeepEqual(Buffer.from(ka!.key), Buffer.from(kb!.key));
    assert.throws(() => generatePayloadKeySpec('has,comma'), PayloadKeyConfigError);
  });

  it('builds a data converter whose codec and failure converter the SDK can load', async () => {
    const dc = createDataConverter(generatePayloadKeySpec('k9'));
    assert.equal(dc.payloadCodecs?.length, 1);
    assert.ok(dc.payloadCodecs![0] instanceof AesGcmPayloadCodec);
    assert.ok(dc.failureConverterPath && existsSync(dc.failureConverterPath));
    // The same loader Client and Worker use: proves the path is require()-able.
    const loaded = loadDataConverter(dc);
    const failure = loaded.failureConverter.errorToFailure(new Error(`boom ${SECRET}`), loaded.payloadConverter);
    assert.equal(failure.message, 'Encoded failure');
    assert.equal(failure.stackTrace, '');
    assert.ok(failure.encodedAttributes);
    assert.throws(() => createDataConverter('k1:short'), PayloadKeyConfigError);
  });
});

/**
 * The real `temporal` binary: TEMPORAL_CLI, then PATH (pyenv shims last, they
 * only re-exec the real binary), then the Python scripts directory where pip puts
 * the `temporalio-cli` binary.
 */
function findTemporalCli(): string | undefined {
  const executable = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (process.env.TEMPORAL_CLI) return executable(process.env.TEMPORAL_CLI) ? process.env.TEMPORAL_CLI : undefined;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const candidates = dirs.filter((d) => !d.includes(`${path.sep}shims`)).map((d) => path.join(d, 'temporal'));
  try {
    const scripts = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (scripts) candidates.push(path.join(scripts, 'temporal'));
  } catch {
    // No python3: fall through to the shims.
  }
  candidates.push(...dirs.filter((d) => d.includes(`${path.sep}shims`)).map((d) => path.join(d, 'temporal')));
  return candidates.find((c) => existsSync(c) && executable(c) && !isShellShim(c)) ?? candidates.find(executable);
}

function isShellShim(file: string): boolean {
  try {
    return readFileSync(file).subarray(0, 2).toString('latin1') === '#!';
  } catch {
    return false;
  }
}

const temporalCli = findTemporalCli();

describe(
  'payload encryption against a real Temporal server',
  { skip: temporalCli ? false : 'temporal CLI not found (set TEMPORAL_CLI)' },
  () => {
    const namespace = 'default';
    const taskQueue = `codec-e2e-${randomBytes(4).toString('hex')}`;
    let env: TestWorkflowEnvironment;
    let worker: Worker;
    let workerRun: Promise<void>;
    let client: Client;
    let echoWorkflowId: string | undefined;
    let echoSecret: string | undefined;
    const spec = generatePayloadKeySpec('e2e');

    before(async () => {
      env = await TestWorkflowEnvironment.createLocal({
        server: { executable: { type: 'existing-path', path: temporalCli! } },
      });
      const activities: EchoActivities = { echoActivity: async (secret) => `activity saw ${secret}` };
      worker = await Worker.create({
        connection: env.nativeConnection,
        namespace,
        taskQueue,
        workflowsPath: fileURLToPath(new URL('../test/fixtures/echo-workflow.ts', import.meta.url)),
        activities,
        dataConverter: createDataConverter(spec),
      });
      workerRun = worker.run();
      client = new Client({ connection: env.connection, namespace, dataConverter: createDataConverter(spec) });
    });

    after(async () => {
      if (worker) {
        worker.shutdown();
        await workerRun;
      }
      await env?.teardown();
    });

    async function rawHistory(workflowId: string): Promise<{ bytes: Uint8Array; events: proto.temporal.api.history.v1.IHistoryEvent[] }> {
      const events: proto.temporal.api.history.v1.IHistoryEvent[] = [];
      let nextPageToken: Uint8Array | undefined;
      do {
        const page = await env.connection.workflowService.getWorkflowExecutionHistory({
          namespace,
          execution: { workflowId },
          nextPageToken,
        });
        events.push(...(page.history?.events ?? []));
        nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      } while (nextPageToken);
      return { bytes: proto.temporal.api.history.v1.History.encode({ events }).finish(), events };
    }

    function assertNoSecret(bytes: Uint8Array, secret: string): void {
      assert.equal(containsBytes(bytes, secret), false, 'secret found in raw history');
      assert.equal(containsBytes(bytes, Buffer.from(secret).toString('base64')), false);
      assert.ok(containsBytes(bytes, ENCRYPTED_ENCODING), 'history should hold encrypted payloads');
    }

    it('stores input, activity data, memo and result encrypted; the client decodes them', async () => {
      const secret = `SECRET-${randomBytes(12).toString('hex')}`;
      const workflowId = `codec-echo-${randomBytes(4).toString('hex')}`;
      const result = await client.workflow.execute<typeof echoWorkflow>('echoWorkflow', {
        workflowId,
        taskQueue,
        args: [{ secret }],
        memo: { note: `memo ${secret}` },
      });
      assert.deepEqual(result, { echoed: secret, fromActivity: `activity saw ${secret}` });
      const described = await client.workflow.getHandle(workflowId).describe();
      assert.deepEqual(described.memo, { note: `memo ${secret}` });

      const { bytes, events } = await rawHistory(workflowId);
      assertNoSecret(bytes, secret);
      const completed = events.find((e) => e.workflowExecutionCompletedEventAttributes);
      const resultPayload = completed?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0];
      assert.ok(resultPayload);
      assert.equal(metaText(resultPayload, 'encoding'), ENCRYPTED_ENCODING);
      assert.equal(metaText(resultPayload, KEY_ID_METADATA), 'e2e');
      echoWorkflowId = workflowId;
      echoSecret = secret;
    });

    it('lets the temporal CLI read that history through the codec server', async (t) => {
      if (!echoWorkflowId || !echoSecret) return t.skip('needs the echo workflow from the previous test');
      const token = randomBytes(24).toString('base64url');
      const server = await startCodecServer({ port: 0, keysSpec: spec, token, allowedOrigins: ['http://localhost:8233'] });
      // A developer's own TEMPORAL_* settings or profile (e.g. a codec endpoint) must not leak in.
      const cliEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
      cliEnv.TEMPORAL_CONFIG_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'no-such-temporal-config.toml');
      try {
        const show = (...extra: string[]) =>
          promisify(execFile)(
            temporalCli!,
            [
              'workflow',
              'show',
              '--workflow-id',
              echoWorkflowId!,
              '--address',
              env.address,
              '--namespace',
              namespace,
              '--output',
              'json',
              ...extra,
            ],
            { env: cliEnv, maxBuffer: 16 * 1024 * 1024 },
          );
        // The CLI prints payloads in proto3 JSON (base64), so look inside the started event's input.
        const input = (stdout: string): JsonPayload => {
          const history = JSON.parse(stdout) as {
            events: { workflowExecutionStartedEventAttributes?: { input: { payloads: JsonPayload[] } } }[];
          };
          return history.events[0]!.workflowExecutionStartedEventAttributes!.input.payloads[0]!;
        };
        const raw = input((await show()).stdout);
        assert.equal(Buffer.from(raw.metadata.encoding!, 'base64').toString(), ENCRYPTED_ENCODING);
        const decoded = input((await show('--codec-endpoint', server.url, '--codec-auth', `Bearer ${token}`)).stdout);
        assert.equal(Buffer.from(decoded.metadata.encoding!, 'base64').toString(), 'json/plain');
        assert.deepEqual(JSON.parse(Buffer.from(decoded.data!, 'base64').toString()), { secret: echoSecret });
        // The CLI keeps retrying a refused codec call until its deadline, so keep that short.
        await assert.rejects(
          show('--codec-endpoint', server.url, '--codec-auth', 'Bearer wrong-token-wrong-token', '--command-timeout', '2s'),
        );
      } finally {
        await server.close();
      }
    });

    it('stores failure messages, stack traces and details encrypted', async () => {
      const secret = `SECRET-${randomBytes(12).toString('hex')}`;
      const workflowId = `codec-fail-${randomBytes(4).toString('hex')}`;
      await assert.rejects(
        client.workflow.execute<typeof failingEchoWorkflow>('failingEchoWorkflow', { workflowId, taskQueue, args: [{ secret }] }),
        (err: unknown) => {
          assert.ok(err instanceof WorkflowFailedError);
          assert.ok(err.cause instanceof ApplicationFailure);
          assert.equal(err.cause.message, `refusing to continue with ${secret}`);
          assert.equal(err.cause.type, 'EchoFailure');
          assert.deepEqual(err.cause.details, [{ secret }]);
          return true;
        },
      );

      const { bytes, events } = await rawHistory(workflowId);
      assertNoSecret(bytes, secret);
      assert.equal(containsBytes(bytes, 'refusing to continue'), false);
      const failed = events.find((e) => e.workflowExecutionFailedEventAttributes);
      const failure = failed?.workflowExecutionFailedEventAttributes?.failure;
      assert.equal(failure?.message, 'Encoded failure');
      assert.equal(failure?.stackTrace, '');
      assert.equal(metaText(failure!.encodedAttributes!, 'encoding'), ENCRYPTED_ENCODING);
    });
  },
);
