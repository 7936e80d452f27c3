// `npm run bench`: its options refuse bad values with a clear message, and a tiny fleet run
// (2 apps × 2 CVMs, with its own stack, worker process and SDK baseline; about a minute) ends in
// a JSON line of the documented shape in which every update succeeded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BenchUsageError, MAX_FLEET_UPDATES, parseBenchOptions } from '../scripts/bench/options.ts';
import { cpuSecondsBetween, processRole, processTreeCpu } from '../scripts/bench/process-cpu.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('bench options', () => {
  test('defaults: 50 apps × 4 CVMs with the baseline', () => {
    const o = parseBenchOptions([]);
    assert.notEqual(o, 'help');
    if (o === 'help') return;
    assert.deepEqual(
      { apps: o.apps, cvmsPerApp: o.cvmsPerApp, baseline: o.baseline, runs: o.runs, concurrent: o.concurrent, blockTime: o.blockTime },
      { apps: 50, cvmsPerApp: 4, baseline: true, runs: 5, concurrent: 10, blockTime: 1 },
    );
  });

  test('values are read', () => {
    const o = parseBenchOptions([
      '--apps',
      '3',
      '--cvms-per-app',
      '2',
      '--no-baseline',
      '--runs',
      '0',
      '--concurrent',
      '0',
      '--block-time',
      '0.5',
      '--from-source',
      '--worker-node-args',
      ' --cpu-prof  --cpu-prof-dir=/tmp/p ',
    ]);
    assert.deepEqual(o, {
      runs: 0,
      concurrent: 0,
      apps: 3,
      cvmsPerApp: 2,
      baseline: false,
      blockTime: 0.5,
      applyDelayMs: undefined,
      fromSource: true,
      workerNodeArgs: ['--cpu-prof', '--cpu-prof-dir=/tmp/p'],
    });
    const plain = parseBenchOptions([]);
    assert.ok(plain !== 'help' && plain.fromSource === false && plain.workerNodeArgs.length === 0, 'the worker is compiled by default');
    assert.equal(parseBenchOptions(['--help']), 'help');
  });

  for (const [args, message] of [
    [['--apps=-1'], /--apps must be an integer >= 0, got "-1"/],
    [['--apps', '-1'], /'--apps' argument is ambiguous/],
    [['--apps', '2.5'], /--apps must be an integer >= 0, got "2.5"/],
    [['--apps', 'many'], /--apps must be an integer >= 0, got "many"/],
    [['--apps', ''], /--apps must be an integer >= 0, got ""/],
    [['--cvms-per-app', '0'], /--cvms-per-app must be an integer >= 1, got "0"/],
    [['--block-time=-1'], /--block-time must be a number >= 0, got "-1"/],
    [['--apply-delay-ms', '1e99x'], /--apply-delay-ms must be an integer >= 0/],
    [['--apps', '1000', '--cvms-per-app', '4'], new RegExp(`at most ${MAX_FLEET_UPDATES}, got 4000`)],
    [['--runs', '0', '--concurrent', '0', '--apps', '0'], /nothing to measure/],
    [['--fleet'], /Unknown option '--fleet'/],
    [['--apps'], /--apps/],
    [['extra'], /positional/i],
  ] as const) {
    test(`refuses ${JSON.stringify(args.join(' '))}`, () => {
      assert.throws(
        () => parseBenchOptions([...args]),
        (err: unknown) => err instanceof BenchUsageError && message.test(err.message),
      );
    });
  }

  test('npm run bench with a bad value exits 2 with the message and the usage, starting nothing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench-updates.ts', '--apps', 'x'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /--apps must be an integer >= 0, got "x"/);
    assert.match(stderr, /usage: npm run bench/);
    assert.equal(stdout, '');
  });
});

test("CPU accounting: a busy child's core seconds land under its part, the bench's own under the bench", async () => {
  const before = processTreeCpu();
  const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 400; while (Date.now() < end);'], { stdio: 'ignore' });
  // Read while the child still exists: a reaped child is gone from /proc.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const during = processTreeCpu();
  assert.ok(during.has(child.pid!), 'the child is in the tree');
  const spent = cpuSecondsBetween(before, during, processRole(child.pid!));
  await new Promise((resolve) => child.on('exit', resolve));
  assert.ok(spent.worker! >= 0.1, `the busy child counted as the worker: ${JSON.stringify(spent)}`);
  assert.equal(spent.baseline, undefined, 'nothing else was labelled a node process of its own');
  // Once it has exited and been waited for, its time is the parent's reaped time: the bench's is the baseline's.
  const reaped = cpuSecondsBetween(before, processTreeCpu(), processRole(-1));
  assert.ok(reaped.baseline! >= 0.3, `an exited child of the bench counts as the baseline: ${JSON.stringify(reaped)}`);
});

test('a 2 × 2 fleet run: the JSON line has the fleet and baseline figures and every update succeeded', { timeout: 240_000 }, async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/bench-updates.ts',
      '--runs',
      '0',
      '--concurrent',
      '0',
      '--apps',
      '2',
      '--cvms-per-app',
      '2',
      '--apply-delay-ms',
      '200',
      // Other test files run dist/ at the same time: this one must not rebuild it under them.
      '--from-source',
    ],
    {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, stderr.slice(-3000));
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines.at(-1)!) as Record<string, Record<string, unknown>>;
  assert.match(stdout, /durable-cvm-envs\s+@phala\/cloud \+ viem inline/, 'the side-by-side table comes before the JSON line');

  const fields = [
    'updates',
    'succeeded',
    'registrationsMined',
    'distinctRegistrations',
    'signed',
    'wallMs',
    'singleWallMs',
    'ratio',
    'workerPeakRssMb',
  ];
  for (const name of ['fleet', 'baseline'] as const) {
    const s = summary[name]!;
    assert.ok(s, `${name} is in the JSON line`);
    for (const f of fields) assert.equal(typeof s[f], 'number', `${name}.${f} is a number (${JSON.stringify(s[f])})`);
    assert.equal(s.updates, 4);
    assert.equal(s.succeeded, s.updates, `${name}: every update succeeded (${JSON.stringify(s.failures)})`);
    assert.equal(s.distinctRegistrations, 2, `${name}: each app registered its one new compose hash`);
    assert.ok((s.registrationsMined as number) >= 2 && (s.signed as number) >= 2);
  }
  // The baseline signs one registration per update, whatever the app.
  assert.equal(summary.baseline!.signed, 4);
  assert.equal(summary.baseline!.registrationsMined, 4);
  // Where the time went, read back from the fleet's histories.
  const profile = summary.fleetProfile as unknown as Record<string, Record<string, unknown>>;
  assert.equal(profile.updates!.workflows, 4);
  for (const f of ['eventsPerWorkflow', 'workflowTasksPerWorkflow', 'activityTasksPerWorkflow'])
    assert.ok((profile.updates![f] as number) > 0, `fleetProfile.updates.${f} is counted (${JSON.stringify(profile.updates![f])})`);
  assert.ok((profile.manager!.eventsPerWorkflow as number) > 0, 'the signer manager is profiled');
  assert.match(stdout, /Where the fleet's time went/);
  // The CPU each part spent: the worker and the server during the fleet, the SDK's process during the baseline.
  const cpu = summary.fleetCpuSeconds as unknown as Record<string, number>;
  assert.ok(cpu.worker! > 0 && cpu['Temporal server']! > 0, `fleetCpuSeconds: ${JSON.stringify(cpu)}`);
  assert.ok((summary.baselineCpuSeconds as unknown as Record<string, number>).baseline! > 0, JSON.stringify(summary.baselineCpuSeconds));
  assert.match(stdout, /CPU spent while the fleet ran/);
  const floor = summary.floor!;
  for (const f of [
    'floorMs',
    'apiRoundTripsMs',
    'nextBlockWaitMs',
    'remainingConfirmationsMs',
    'applyDelayMs',
    'singleWallMs',
    'measuredOverFloor',
  ]) {
    assert.equal(typeof floor[f], 'number', `floor.${f}`);
  }
  assert.ok((floor.singleWallMs as number) > (floor.floorMs as number) * 0.9, 'one update does not beat its floor');
});
