// The package as it ships: `npm pack`, installed with production dependencies only into an
// empty folder, imported by name from plain node, and its worker run from dist/ against a
// Temporal server that keeps its state on disk and is restarted in the middle of an update
// (the topology docker-compose.yml describes, run natively because no image can be pulled here).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { createDataConverter } from '../src/codec.ts';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { freePort } from '../src/dev/free-port.ts';
import { startTemporalServer, type TemporalServer } from '../src/dev/temporal-server.ts';
import { registrationsOf } from './support/registrations.ts';
import { useStack, type TestStack } from './support/stack.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
let dir: string;
let installed: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dce-pack-'));
  // prepack builds dist/ (tsc and the workflow bundle) first.
  const t0 = Date.now();
  await run('npm', ['pack', '--pack-destination', dir], { cwd: root, maxBuffer: 1 << 24 });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote a tarball');
  const app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball)], {
    cwd: app,
    maxBuffer: 1 << 24,
  });
  installed = app;
  process.stderr.write(`# packed and installed with --omit=dev in ${Date.now() - t0} ms\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const pkgDir = () => join(installed, 'node_modules', 'durable-cvm-envs');

test('no dev dependency is installed; the package ships dist/ with its workflow bundle', () => {
  for (const dev of ['tsx', 'typescript', '@phala/cloud', 'solc', '@foundry-rs/anvil']) {
    assert.ok(!existsSync(join(installed, 'node_modules', dev)), `${dev} was installed`);
  }
  const bundle = readFileSync(join(pkgDir(), 'dist', 'workflow-bundle.js'), 'utf8');
  // Built with the codec's failure converter: failure messages go into encrypted payloads.
  assert.match(bundle, /encodeCommonAttributes: true/);
  assert.match(bundle, /cvm_env_updates_finished/, 'with the metrics interceptors');
  assert.ok(existsSync(join(pkgDir(), 'dist', 'index.d.ts')));
  assert.ok(!existsSync(join(pkgDir(), 'src')), 'sources are not shipped');
});

test('plain node imports the package by name and builds a data converter and a client', async () => {
  const script = `
    import { createDataConverter, generatePayloadKeySpec, startEnvUpdate } from 'durable-cvm-envs';
    import { Client, Connection } from '@temporalio/client';
    const dataConverter = createDataConverter(generatePayloadKeySpec());
    const client = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }), dataConverter });
    const [encoded] = await dataConverter.payloadCodecs[0].encode([{ metadata: {}, data: new TextEncoder().encode('x') }]);
    console.log(JSON.stringify({
      failureConverter: dataConverter.failureConverterPath,
      client: typeof client.workflow.start,
      start: typeof startEnvUpdate,
      encoding: new TextDecoder().decode(encoded.metadata.encoding),
    }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: installed });
  const out = JSON.parse(stdout) as Record<string, string>;
  assert.match(out.failureConverter!, /dist\/codec-failure-converter\.js$/);
  assert.ok(existsSync(out.failureConverter!), 'the failure converter path exists');
  assert.equal(out.client, 'function');
  assert.equal(out.start, 'function');
  assert.equal(out.encoding, 'binary/encrypted');
});

test('the bin entries run from dist: the CLI prints its usage, the worker names a missing variable', async () => {
  const bin = (name: string) => join(installed, 'node_modules', '.bin', name);
  const help = await run(bin('durable-cvm-envs'), ['help'], { cwd: installed });
  assert.match(help.stdout + help.stderr, /Commands:/);
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  await assert.rejects(run(bin('durable-cvm-envs-worker'), [], { cwd: installed, env }), (err: { code?: number; stderr?: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr ?? '', /PAYLOAD_ENCRYPTION_KEYS is required/);
    return true;
  });
});

describeNative();

/** The compose topology, natively: persistent Temporal, the worker from the installed dist. */
function describeNative(): void {
  let stack: TestStack;
  let temporal: TemporalServer | undefined;
  let worker: ChildProcess | undefined;
  let workerExited: Promise<number | null> | undefined;
  let dataDir: string;

  before(async () => {
    stack = await useStack();
    dataDir = mkdtempSync(join(tmpdir(), 'dce-native-'));
  });
  after(async () => {
    worker?.kill('SIGKILL');
    await workerExited;
    await temporal?.stop();
    await stack?.release();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('native topology: the dist worker finishes an on-chain update across a Temporal server restart', async () => {
    const port = await freePort();
    const uiPort = await freePort();
    const dbFile = join(dataDir, 'temporal.db');
    const start = () => startTemporalServer({ dbFile, logFile: join(dataDir, 'temporal.log'), port, uiPort });
    temporal = await start();
    // The stack's server journals ahead (SQLITE_PRAGMAS): the restart below proves it loses nothing.
    assert.ok(existsSync(`${dbFile}-wal`), 'the Temporal server did not open its database in WAL mode');
    const taskQueue = `native-${randomBytes(4).toString('hex')}`;
    const env: Record<string, string> = {
      ...stack.env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: taskQueue,
      CHAIN_CONFIRMATIONS: `${stack.info.chainId}=5`,
    };

    const t0 = Date.now();
    worker = spawn(process.execPath, [join(pkgDir(), 'dist', 'worker.js')], {
      cwd: installed,
      // INFO: the worker says it polls at that level.
      env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: 'INFO' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    workerExited = new Promise((resolve) => worker!.once('exit', (code) => resolve(code)));
    let stderr = '';
    const polling = new Promise<void>((resolve) =>
      worker!.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/polling task queue/.test(stderr)) resolve();
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      polling,
      workerExited.then((code) => assert.fail(`the worker exited (${code}): ${stderr}`)),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`the worker never polled: ${stderr}`)), 90_000))),
    ]).finally(() => clearTimeout(timer));
    process.stderr.write(`# worker from dist polling after ${Date.now() - t0} ms\n`);

    const sim = new SimAdminClient(stack.env.PHALA_API_URL!, stack.env.SIM_ADMIN_TOKEN!);
    const app = stack.info.apps.find((a) => a.ownerIsSigner && a.name !== 'app-signer-shared')!;
    const cvm = await sim.createCvm({ kms: 'onchain', appId: app.appId, allowedEnvs: ['BASE'] });
    const values = { BASE: randomBytes(6).toString('hex'), RESTART_KEY: randomBytes(6).toString('hex') };

    const connect = async () =>
      new Client({
        connection: await Connection.connect({ address: temporal!.address }),
        namespace: temporal!.namespace,
        dataConverter: createDataConverter(env.PAYLOAD_ENCRYPTION_KEYS!),
      });
    let client = await connect();
    await startEnvUpdate(client, { cvmId: cvm.id, env: values }, { taskQueue });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = await getEnvUpdateStatus(client, cvm.id).catch(() => undefined);
      if (s?.phase === 'confirming') break;
      // The manager answers only `confirmed` when the depth comes quickly: the chain says
      // when the registration is mined and its confirmations are under way.
      if (s?.phase === 'registering' && s.composeHash && (await registrationsOf(stack.info.rpcUrl, cvm.appId, s.composeHash)).length > 0)
        break;
      assert.ok(Date.now() < deadline, `never reached confirming: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await client.connection.close();

    // Down in the middle of the confirmations, back on the same database and port.
    await temporal.stop();
    temporal = await start();
    client = await connect();
    const result = await awaitEnvUpdate(client.workflow.getHandle(`cvm-env-${cvm.id}`));
    await client.connection.close();

    assert.equal(result.applied, true);
    assert.deepEqual((await sim.appliedEnv(cvm.id)).env, values);
    assert.deepEqual(await registrationsOf(stack.info.rpcUrl, cvm.appId, result.composeHash!), [result.transactionHash]);
    assert.equal(worker.exitCode, null, 'the worker rode out the restart');

    worker.kill('SIGTERM');
    assert.equal(await workerExited, 0, 'SIGTERM stops the worker cleanly');
    worker = undefined;
  });
}
