import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import type { Worker, NativeConnection } from '@temporalio/worker';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createDataConverter } from '../../src/codec.ts';
import { anvilRpc } from '../../src/dev/anvil.ts';
import { deployRegisteredApp } from './apps.ts';
import { createWorker } from '../../src/worker.ts';
import { buildWorkflowBundle } from '../../src/workflow-bundling.ts';
import { SimAdminClient, type NewSimCvm, type SimCvmSummary } from '../../src/simulator/admin-client.ts';
import { useStack, type TestStack } from './stack.ts';

export interface Harness {
  taskQueue: string;
  /** stack.env with this harness's task queue: what a worker process of this test reads. */
  env: Record<string, string>;
  client: Client;
  sim: SimAdminClient;
  /** A fresh CVM, so test files sharing the simulator never touch each other's. */
  newCvm(spec: NewSimCvm): Promise<SimCvmSummary>;
  /** The harness's own app (owned by its signer key), or one its key does not own. */
  appId(ownerIsSigner: boolean): string;
  /** Another app owned by the harness's key. */
  newApp(): Promise<string>;
  /** The harness's own signer key: one transaction manager per harness, so test files never share nonces. */
  signer: { address: string; key: `0x${string}` };
  startWorker(extraEnv?: Record<string, string>): Promise<{ worker: Worker; stop(): Promise<void> }>;
  /** A worker in a process of its own, for tests that SIGKILL it. */
  spawnWorker(extraEnv?: Record<string, string>): { child: ChildProcess; exited: Promise<number | null> };
  close(): Promise<void>;
}

let bundle: Promise<string> | undefined;
/** Bundled once per test process: every worker of the file then starts in about a second. */
function workflowBundle(): Promise<string> {
  bundle ??= buildWorkflowBundle(quietLogger).then((code) => {
    const dir = mkdtempSync(join(tmpdir(), 'dce-bundle-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'workflows.js');
    writeFileSync(path, code);
    return path;
  });
  return bundle;
}

export async function createHarness(stack: TestStack): Promise<Harness> {
  const taskQueue = `test-${randomUUID()}`;
  const bundlePath = await workflowBundle();
  const key = generatePrivateKey();
  const account = privateKeyToAccount(key);
  await anvilRpc(stack.info.rpcUrl, 'anvil_setBalance', [account.address, '0x56bc75e2d63100000']);
  // Registered with the stack's KMS like every real app, so its CVMs pass the boot check.
  const deployApp = () => deployRegisteredApp(stack, account);
  const ownApp = await deployApp();
  const env: Record<string, string> = {
    ...stack.env,
    TEMPORAL_TASK_QUEUE: taskQueue,
    WORKFLOW_BUNDLE_PATH: bundlePath,
    SIGNER_PRIVATE_KEY: key,
  };
  const connection = await Connection.connect({ address: stack.info.temporalAddress });
  const client = new Client({
    connection,
    namespace: stack.info.temporalNamespace,
    dataConverter: createDataConverter(stack.env.PAYLOAD_ENCRYPTION_KEYS!),
  });
  const sim = new SimAdminClient(stack.env.PHALA_API_URL!, stack.env.SIM_ADMIN_TOKEN!);
  const workers = new Set<{ stop(): Promise<void> }>();
  const children = new Set<ChildProcess>();

  const harness: Harness = {
    taskQueue,
    env,
    client,
    sim,
    newCvm: (spec) => sim.createCvm(spec),
    signer: { address: account.address, key },
    newApp: deployApp,
    appId(ownerIsSigner) {
      if (ownerIsSigner) return ownApp;
      const app = stack.info.apps.find((a) => !a.ownerIsSigner);
      if (!app) throw new Error('the stack has no app its signer does not own');
      return app.appId;
    },
    async startWorker(extraEnv = {}) {
      const created: { worker: Worker; connection: NativeConnection } = await createWorker({ env: { ...env, ...extraEnv } });
      const running = created.worker.run();
      const handle = {
        worker: created.worker,
        async stop() {
          if (created.worker.getState() === 'RUNNING') created.worker.shutdown();
          await running.catch(() => {});
          await created.connection.close();
          workers.delete(handle);
        },
      };
      workers.add(handle);
      return handle;
    },
    spawnWorker(extraEnv = {}) {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/crashing-worker.ts'], {
        env: { ...process.env, ...env, ...extraEnv },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      children.add(child);
      void exited.then(() => children.delete(child));
      return { child, exited };
    },
    async close() {
      for (const c of [...children]) c.kill('SIGKILL');
      for (const w of [...workers]) await w.stop();
      await connection.close();
    },
  };
  return harness;
}

/**
 * The stack, a harness and one running worker for every test of the calling file, stopped
 * after its last test. `private`: a stack of the file's own, for files whose simulator faults
 * cannot be scoped to one CVM (they would reach other files' updates on the shared stack). The hooks are registered at the call, so call it at a file's top level;
 * `stack` and `h` exist only once the `before` hook has run, that is inside the tests.
 */
export function useUpdateHarness(options: { private?: boolean } = {}): { readonly stack: TestStack; readonly h: Harness } {
  let stack: TestStack | undefined;
  let h: Harness | undefined;
  before(async () => {
    stack = await useStack(options.private ? { private: true } : {});
    h = await createHarness(stack);
    await h.startWorker();
  });
  after(async () => {
    await h?.close();
    await stack?.release();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useUpdateHarness: the stack and harness exist only inside tests');
    return value;
  };
  return {
    get stack() {
      return ready(stack);
    },
    get h() {
      return ready(h);
    },
  };
}

const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error(message: string) {
    process.stderr.write(`${message}\n`);
  },
};
