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
    for (const name of ['CvmId', 'AppId', 'UpdatePhase']) {
      assert.ok(name in (res.customAttributes ?? {}), `${name} is not registered`);
    }
  } finally {
    await connection.close();
  }
});
