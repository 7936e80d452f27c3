// Bad input fails at once, with a message that names the problem and never a value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { awaitEnvUpdate, startEnvUpdate, type EnvUpdateHandle } from '../src/client.ts';
import { createHarness, useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

/** The innermost failure message: what an operator reads in the UI. */
async function failureOf(handle: EnvUpdateHandle | WorkflowHandle): Promise<{ message: string; seconds: number }> {
  const started = Date.now();
  try {
    await awaitEnvUpdate(handle as EnvUpdateHandle);
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let cause: unknown = err.cause;
    const messages: string[] = [];
    while (cause instanceof Error) {
      messages.push(cause.message);
      cause = (cause as { cause?: unknown }).cause;
    }
    return { message: messages.join(' / '), seconds: (Date.now() - started) / 1000 };
  }
  throw new Error('the workflow did not fail');
}

test('bad key names: every offending key named, no value shown', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const { handle } = await startEnvUpdate(
    setup.h.client,
    { cvmId: cvm.id, env: { '1BAD': 'value-one-1234', 'GOOD-NOT': 'value-two-5678', FINE: 'ok' } },
    { taskQueue: setup.h.taskQueue },
  );
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /invalid env vars \(2 problems\)/);
  assert.match(message, /1BAD/);
  assert.match(message, /GOOD/);
  assert.doesNotMatch(message, /value-one-1234|value-two-5678/);
  assert.ok(seconds < 10, `took ${seconds} s`);
});

test('an oversized value is named by its key', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const big = 'x'.repeat(128 * 1024 + 1);
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { HUGE: big } }, { taskQueue: setup.h.taskQueue });
  const { message } = await failureOf(handle);
  assert.match(message, /HUGE/);
  assert.match(message, /131072|128 KiB/);
  assert.doesNotMatch(message, /xxxxxxxxxx/);
});

test('allowedKeys must cover the env (the guest would drop the rest silently)', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const { handle } = await startEnvUpdate(
    setup.h.client,
    { cvmId: cvm.id, env: { A: '1', B: '2' }, allowedKeys: ['A'] },
    { taskQueue: setup.h.taskQueue },
  );
  assert.match((await failureOf(handle)).message, /allowedKeys must include every env key; missing: B/);
});

test("an unknown CVM fails at once with the API's 404", async () => {
  const { handle } = await startEnvUpdate(
    setup.h.client,
    { cvmId: 'cvm_does_not_exist', env: { A: '1' } },
    { taskQueue: setup.h.taskQueue },
  );
  const { message, seconds } = await failureOf(handle);
  assert.match(message, /404 not_found/);
  assert.ok(seconds < 10, `took ${seconds} s`);
});

test('a wrong API key fails at once with 401, and the key is not in the message', async () => {
  const wrongKey = 'phak_wrong_key_for_this_test_0123456789';
  const other = await createHarness(setup.stack);
  try {
    await other.startWorker({ PHALA_API_KEY: wrongKey });
    const cvm = await setup.h.newCvm({ kms: 'phala' });
    const { handle } = await startEnvUpdate(other.client, { cvmId: cvm.id, env: { A: '1' } }, { taskQueue: other.taskQueue });
    const { message, seconds } = await failureOf(handle);
    assert.match(message, /401 auth/);
    assert.ok(!message.includes(wrongKey));
    assert.ok(seconds < 10, `took ${seconds} s`);
  } finally {
    await other.close();
  }
});

test('the client refuses malformed input before starting anything', async () => {
  await assert.rejects(
    startEnvUpdate(setup.h.client, { cvmId: '', env: { A: '1' } }, { taskQueue: setup.h.taskQueue }),
    /cvmId is required/,
  );
  await assert.rejects(
    startEnvUpdate(setup.h.client, { cvmId: 'x', env: { A: '1' }, confirmations: 0 }, { taskQueue: setup.h.taskQueue }),
    /confirmations must be a positive integer/,
  );
  await assert.rejects(
    // @ts-expect-error: the policy is checked at run time too
    startEnvUpdate(setup.h.client, { cvmId: 'x', env: { A: '1' }, composeHashPolicy: 'lenient' }, { taskQueue: setup.h.taskQueue }),
    /composeHashPolicy must be/,
  );
});
