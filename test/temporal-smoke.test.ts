import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
before(async () => {
  stack = await useStack();
});
after(async () => {
  await stack.release();
});

test('a workflow completes on the real Temporal server through a real worker', async () => {
  const taskQueue = `smoke-${randomUUID()}`;
  const nativeConnection = await NativeConnection.connect({ address: stack.info.temporalAddress });
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: stack.info.temporalNamespace,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./fixtures/hello-workflow.ts', import.meta.url)),
    activities: { greet: async (name: string) => `hello, ${name}` },
  });
  const connection = await Connection.connect({ address: stack.info.temporalAddress });
  const client = new Client({ connection, namespace: stack.info.temporalNamespace });
  try {
    const result = await worker.runUntil(
      client.workflow.execute('helloWorkflow', { taskQueue, workflowId: `smoke-${randomUUID()}`, args: ['durable'] }),
    );
    assert.equal(result, 'hello, durable');
  } finally {
    await connection.close();
    await nativeConnection.close();
  }
});

test('the search attributes the update workflow sets are registered', async () => {
  const connection = await Connection.connect({ address: stack.info.temporalAddress });
  try {
    const res = await connection.operatorService.listSearchAttributes({ namespace: stack.info.temporalNamespace });
    for (const name of ['CvmId', 'AppId', 'UpdatePhase', 'RequestId']) {
      assert.ok(name in (res.customAttributes ?? {}), `${name} is not registered`);
    }
  } finally {
    await connection.close();
  }
});

test('the Temporal UI is configured with our codec server, which decodes for it and for nobody else', async () => {
  const settings = (await (await fetch(`${stack.info.temporalUiUrl}/api/v1/settings`)).json()) as { Codec?: { Endpoint?: string } };
  const endpoint = settings.Codec?.Endpoint ?? '';
  assert.ok(endpoint.startsWith(stack.info.codecServerUrl), `UI codec endpoint: ${endpoint ? '(set elsewhere)' : '(none)'}`);

  const { createDataConverter } = await import('../src/codec.ts');
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const codec = createDataConverter(stack.env.PAYLOAD_ENCRYPTION_KEYS!).payloadCodecs![0]!;
  const [encrypted] = await codec.encode([defaultPayloadConverter.toPayload('operator-visible')!]);
  const b64 = (b?: Uint8Array | null) => Buffer.from(b ?? []).toString('base64');
  const body = JSON.stringify({
    payloads: [
      { metadata: Object.fromEntries(Object.entries(encrypted!.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(encrypted!.data) },
    ],
  });
  const origin = stack.info.temporalUiUrl;
  const ok = await fetch(`${endpoint}/decode`, { method: 'POST', headers: { 'content-type': 'application/json', origin }, body });
  assert.equal(ok.status, 200);
  const decoded = (await ok.json()) as { payloads: { data: string }[] };
  assert.equal(Buffer.from(decoded.payloads[0]!.data, 'base64').toString(), '"operator-visible"');

  const noToken = await fetch(`${stack.info.codecServerUrl}/decode`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin },
    body,
  });
  assert.equal(noToken.status, 401);
  const foreign = await fetch(`${endpoint}/decode`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
    body,
  });
  assert.equal(foreign.status, 403);
});
