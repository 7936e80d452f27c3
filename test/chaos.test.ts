// `npm run chaos`: its options refuse bad values, and the short run (5 apps × 2 CVMs with its
// own stack, two worker processes killed in turn, a Temporal restart, API and RPC errors, a
// reorg and a dropped transaction) meets every target: all completed, each compose hash
// registered once, every CVM runs the env it was asked to, no secret in plaintext anywhere.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ChaosUsageError, parseChaosOptions } from '../scripts/chaos/options.ts';
import { findNeedles } from '../scripts/chaos/leaks.ts';
import { startRpcFaultProxy } from '../scripts/chaos/rpc-fault-proxy.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('chaos options', () => {
  test('defaults: 25 apps × 4 CVMs, 2 workers killed every 2 s, 20% API and 10% RPC faults, a depth-3 reorg', () => {
    const o = parseChaosOptions(['--seed', '7']);
    assert.notEqual(o, 'help');
    if (o === 'help') return;
    assert.deepEqual(
      { ...o, maxKills: String(o.maxKills) },
      {
        short: false,
        built: false,
        apps: 25,
        cvmsPerApp: 4,
        workers: 2,
        killEveryS: 2,
        maxKills: 'Infinity',
        temporalRestartAfterS: 15,
        apiFaultRate: 0.2,
        rpcFaultRate: 0.1,
        reorgDepth: 3,
        blockTime: 1,
        timeoutS: 600,
        seed: 7,
      },
    );
  });

  test('--short is small and bounded; explicit values still win', () => {
    const o = parseChaosOptions(['--short', '--apps', '3']);
    assert.ok(o !== 'help');
    assert.deepEqual([o.apps, o.cvmsPerApp, o.maxKills, o.timeoutS], [3, 2, 4, 240]);
    const built = parseChaosOptions(['--built']);
    assert.ok(built !== 'help' && built.built, '--built runs the compiled worker');
  });

  for (const [args, message] of [
    [['--apps', '0'], /--apps must be an integer in \[1, 200\], got "0"/],
    [['--api-fault-rate', '1.5'], /--api-fault-rate must be a number in \[0, 0.9\], got "1.5"/],
    [['--kill-every', 'often'], /--kill-every must be a number/],
    [['--reorg-depth', '2.5'], /--reorg-depth must be an integer/],
    [['--chaos'], /Unknown option '--chaos'/],
  ] as const) {
    test(`refuses ${JSON.stringify(args.join(' '))}`, () => {
      assert.throws(
        () => parseChaosOptions([...args]),
        (err: unknown) => err instanceof ChaosUsageError && message.test(err.message),
      );
    });
  }
});

test('findNeedles names each secret found once, never its value', () => {
  const needles = [
    { label: 'a', value: 'secret-one' },
    { label: 'b', value: 'secret-two' },
  ];
  assert.deepEqual(findNeedles('xx secret-two yy secret-two', needles, 'here'), [{ where: 'here', label: 'b' }]);
  assert.deepEqual(findNeedles(Buffer.from('nothing'), needles, 'here'), []);
});

test('the RPC fault proxy forwards calls, faults the share asked, and none at rate 0', async () => {
  const upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const { id } = JSON.parse(body) as { id: number };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result: '0x1' }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const proxy = await startRpcFaultProxy({
    upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    rate: 0.5,
    seed: 1,
  });
  try {
    const call = async (id: number) => {
      const res = await fetch(proxy.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id, method: 'eth_blockNumber' }) });
      if (res.status !== 200) return 'http';
      const body = (await res.json()) as { result?: string; error?: unknown };
      return body.result === '0x1' ? 'ok' : 'rpc';
    };
    const first = await Promise.all(Array.from({ length: 200 }, (_, i) => call(i)));
    const ok = first.filter((r) => r === 'ok').length;
    assert.ok(ok > 60 && ok < 140, `about half forwarded: ${ok}/200`);
    assert.ok(first.includes('http') && first.includes('rpc'), 'both kinds of fault');
    assert.equal(proxy.stats.faulted, 200 - ok);
    assert.deepEqual(Object.keys(proxy.stats.faultedByMethod), ['eth_blockNumber']);
    proxy.setRate(0);
    assert.ok((await Promise.all(Array.from({ length: 20 }, (_, i) => call(i)))).every((r) => r === 'ok'));
  } finally {
    await proxy.close();
    await new Promise<void>((r) => upstream.close(() => r()));
  }
});

let run: ChildProcess | undefined;
// Even when the test times out: SIGINT makes the run stop its stack, workers and proxy.
after(async () => {
  if (run && run.exitCode === null && run.signalCode === null) {
    const exited = new Promise((resolve) => run!.once('exit', resolve));
    run.kill('SIGINT');
    await exited;
  }
});

test('npm run chaos --short meets every target', { timeout: 420_000 }, async () => {
  const child = (run = spawn(process.execPath, ['--import', 'tsx', 'scripts/chaos/main.ts', '--short'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const context = `${stdout.slice(-4000)}\n${stderr.slice(-3000)}`;
  const r = JSON.parse(stdout.trimEnd().split('\n').at(-1)!) as {
    updates: number;
    completed: number;
    registrations: { duplicates: unknown[]; unregistered: unknown[]; distinct: number };
    mismatches: unknown[];
    plaintextTotal: number;
    scanned: { workflows: number; logFiles: number; cliCommands: number; secrets: number };
    maxHistoryLength: number;
    faults: {
      workers: { kills: number };
      temporalRestart: { atMs: number | null };
      drop: { hash?: string };
      reorg: { registrationsRemoved?: number };
    };
    targetsMissed: string[];
  };
  assert.deepEqual(r.targetsMissed, [], context);
  assert.equal(code, 0, context);
  assert.equal(r.updates, 10);
  assert.equal(r.completed, 10, context);
  assert.equal(r.registrations.distinct, 5, 'one registration per app');
  assert.deepEqual(r.registrations.duplicates, []);
  assert.deepEqual(r.mismatches, []);
  assert.equal(r.plaintextTotal, 0);
  // The checks looked at something, and the faults happened.
  assert.ok(
    r.scanned.workflows >= 11 && r.scanned.logFiles >= 2 && r.scanned.cliCommands >= 3 && r.scanned.secrets >= 30,
    JSON.stringify(r.scanned),
  );
  assert.ok(r.maxHistoryLength > 0);
  assert.ok(
    r.faults.workers.kills >= 1 && typeof r.faults.temporalRestart.atMs === 'number' && r.faults.drop.hash,
    JSON.stringify(r.faults),
  );
  assert.ok((r.faults.reorg.registrationsRemoved ?? 0) >= 1, JSON.stringify(r.faults.reorg));
});
