// Fast workflow tests on Temporal's time-skipping test server (a JVM started per environment),
// installed by `npm run setup:test-server` (`npm test` installs it when missing).
import { connect } from 'node:net';
import { TestWorkflowEnvironment, type TimeSkippingTestWorkflowEnvironmentOptions } from '@temporalio/testing';
import {
  TEST_SERVER_EXECUTABLE,
  TEST_SERVER_INSTALL_COMMAND,
  TEST_SERVER_VERSION,
  testServerInstalled,
} from '../../scripts/install-test-server.ts';
import protos from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../../src/dev/temporal-server.ts';
import { quietTemporalRuntime } from './runtime.ts';

/** How long teardown waits for the server's port to close before it reports the server as still running. */
const STOPPED_WITHIN_MS = 5_000;

/**
 * A `TestWorkflowEnvironment.createTimeSkipping` environment on the test server from
 * `.cache/temporal-test-server/`, with the search attributes the local stack registers (the
 * workflows set them and fail their task when one is unknown). Its `teardown()` may be called more than once, and resolves only
 * once the server no longer accepts connections (it rejects otherwise, unlike the SDK's, which logs
 * and returns). Stop every Worker on `env.nativeConnection` before tearing down.
 */
export async function createTimeSkippingEnv(options: TimeSkippingTestWorkflowEnvironmentOptions = {}): Promise<TestWorkflowEnvironment> {
  if (!testServerInstalled()) {
    throw new Error(
      `The Temporal time-skipping test server ${TEST_SERVER_VERSION} is not installed (${TEST_SERVER_EXECUTABLE} is missing): ` +
        `run \`${TEST_SERVER_INSTALL_COMMAND}\` (needs Java and Maven; \`npm test\` runs it by itself).`,
    );
  }
  quietTemporalRuntime();
  const start = () =>
    TestWorkflowEnvironment.createTimeSkipping({
      ...options,
      server: { ...options.server, executable: { type: 'existing-path', path: TEST_SERVER_EXECUTABLE } },
    });
  let env: TestWorkflowEnvironment;
  try {
    env = await start();
  } catch (err) {
    // The SDK gives the server a fixed 5 s to accept connections, then kills it. The JVM takes
    // about 1 s on an idle machine and was seen taking 3.5 s next to the rest of the suite: one
    // more try (on a warm page cache) before failing the test.
    if (!String((err as Error)?.message ?? err).includes('did not start within')) throw err;
    process.stderr.write(`time-skipping test server: start timed out, starting it once more (${(err as Error).message})\n`);
    env = await start();
  }

  const KEYWORD = protos.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(Object.keys(SEARCH_ATTRIBUTES).map((name) => [name, KEYWORD])),
  });

  const sdkTeardown = env.teardown.bind(env);
  let stopping: Promise<void> | undefined;
  env.teardown = () => (stopping ??= sdkTeardown().then(() => waitUntilClosed(env.address, STOPPED_WITHIN_MS)));
  return env;
}

/** Resolves once nothing accepts connections at `address` (`host:port`); rejects after `timeoutMs`. */
async function waitUntilClosed(address: string, timeoutMs: number): Promise<void> {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator);
  const port = Number(address.slice(separator + 1));
  const deadline = Date.now() + timeoutMs;
  while (await accepts(host, port)) {
    if (Date.now() > deadline) throw new Error(`the time-skipping test server at ${address} still runs ${timeoutMs} ms after teardown`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
