import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { progress, withHeartbeats } from './heartbeat.ts';

/** Runs a wrapped activity that reports progress twice over ~60 ms, and counts the heartbeats sent. */
async function heartbeatsOf(isLocal: boolean): Promise<{ result: string; heartbeats: unknown[] }> {
  const env = new MockActivityEnvironment({ isLocal });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  const { read } = withHeartbeats(
    {
      async read(a: { id: string }): Promise<string> {
        progress({ chunk: 1 });
        await sleep(60);
        progress({ chunk: 2 });
        return `read ${a.id}`;
      },
    },
    20,
  );
  const result = (await env.run(read, { id: 'x' })) as string;
  return { result, heartbeats };
}

test('an activity task heartbeats at once, on its interval, and with its progress', async () => {
  const { result, heartbeats } = await heartbeatsOf(false);
  assert.equal(result, 'read x');
  assert.deepEqual(heartbeats.slice(0, 2), [undefined, { chunk: 1 }]);
  assert.ok(heartbeats.filter((d) => d === undefined).length >= 2, `interval heartbeats: ${JSON.stringify(heartbeats)}`);
  assert.deepEqual(heartbeats.at(-1), { chunk: 2 });
});

test('a local activity sends no heartbeat, progress included, and still returns its result', async () => {
  const { result, heartbeats } = await heartbeatsOf(true);
  assert.equal(result, 'read x');
  assert.deepEqual(heartbeats, []);
});

test('a local activity that fails fails as it would as a task', async () => {
  const env = new MockActivityEnvironment({ isLocal: true });
  const { broken } = withHeartbeats({
    async broken(): Promise<never> {
      throw new Error('the API answered 503');
    },
  });
  await assert.rejects(env.run(broken), /the API answered 503/);
});
