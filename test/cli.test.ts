// The operator CLI as an operator runs it: a child process, checked on exit code, stdout and
// stderr. Usage errors need nothing running; the update runs against the suite's stack.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from '@temporalio/worker';
import type { UpdateEnvResult } from '../src/workflows/definitions.ts';
import { useStack, type TestStack } from './support/stack.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunningCli {
  /** What the process wrote so far. */
  output(): Run;
  done: Promise<Run>;
}

/** The leading `--` is what `npm run cli` passes too (see the script in package.json). */
function startCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000, stdin?: string): RunningCli {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--', ...args], {
    cwd: REPO,
    env,
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { output: () => ({ code: child.exitCode, stdout, stderr }), done };
}

function cli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000, stdin?: string): Promise<Run> {
  return startCli(args, env, timeoutMs, stdin).done;
}

const ARGV_WARNING =
  /warning: -e KEY=VALUE puts values on the command line, .* use --env-file <path>, or --env-file - to read them from stdin/;

async function waitFor(what: string, check: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A process env without any Temporal settings, and pointed away from a developer's .data/stack.env. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TEMPORAL_|PAYLOAD_|PHALA_|SIM_|SIGNER_)/.test(k)) env[k] = v;
  return env;
}

const secret = () => `s3cr3t-${randomBytes(12).toString('hex')}`;

function assertNoLeak(run: Run, values: string[]): void {
  for (const v of values) {
    assert.ok(!run.stdout.includes(v), 'a value reached stdout');
    assert.ok(!run.stderr.includes(v), 'a value reached stderr');
  }
}

describe('usage errors (exit 2, nothing started)', { concurrency: 4 }, () => {
  const env = offlineEnv();

  test('no command prints the usage', async () => {
    const r = await cli([], env);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: npm run cli -- <command>/);
  });

  test('unknown command', async () => {
    const r = await cli(['frobnicate'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });

  test('an unknown command that looks like a pasted variable is not echoed', async () => {
    const v = secret();
    const r = await cli([`API_TOKEN=${v}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command \(not shown\)/);
    assertNoLeak(r, [v]);
  });

  test('missing --cvm', async () => {
    const r = await cli(['update', '-e', 'A=1'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cvm <id> is required/);
  });

  test('both --env-file and -e', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '--env-file', '/tmp/whatever.env', '-e', `A=${v}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /either --env-file or -e KEY=VALUE, not both/);
    assertNoLeak(r, [v]);
  });

  test('neither --env-file nor -e', async () => {
    const r = await cli(['update', '--cvm', 'cvm-x'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /the new env is missing/);
  });

  test("a missing --env-file is ours to report, not node's", async () => {
    const r = await cli(['update', '--cvm', 'cvm-x', '--env-file', '/nonexistent/dce.env'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--env-file: cannot read \/nonexistent\/dce\.env \(ENOENT\)/);
  });

  test('malformed -e: no "="', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'GOOD=1', '-e', v], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /-e #2: expected KEY=VALUE but there is no '='/);
    assertNoLeak(r, [v]);
  });

  test('malformed -e: empty key', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', `=${v}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /-e #1: expected KEY=VALUE but the key is empty/);
    assertNoLeak(r, [v]);
  });

  test('bad --policy', async () => {
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', '--policy', 'lenient'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--policy must be strict, warn or off/);
  });

  test('bad --confirmations: below 1 or above the bound', async () => {
    for (const n of ['0', '257', '1000000000']) {
      const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', '--confirmations', n], env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--confirmations must be an integer from 1 to 256/);
    }
  });

  test("the CVM id and request id are checked with the workflow's own rules", async () => {
    const dotdot = await cli(['update', '--cvm', '..', '-e', 'A=1'], env);
    assert.equal(dotdot.code, 2);
    assert.match(dotdot.stderr, /update: --cvm: cvmId must be a CVM id: letters, digits, '_' and '-'/);
    const spaced = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', '--request-id', 'two words'], env);
    assert.equal(spaced.code, 2);
    assert.match(spaced.stderr, /update: --request-id: requestId may hold only letters, digits, .* \(no spaces\)/);
  });

  test('-e with a value warns that argv is readable, without echoing the value', async () => {
    const v = secret();
    // Refused afterwards (bad policy), so nothing connects: the warning comes first.
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', `TOKEN=${v}`, '--policy', 'STRICT'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, ARGV_WARNING);
    assert.match(r.stderr, /--policy must be strict, warn or off/);
    assertNoLeak(r, [v]);
    // An empty value carries no secret: no warning.
    const empty = await cli(['update', '--cvm', 'cvm-x', '-e', 'EMPTY=', '--policy', 'STRICT'], env);
    assert.equal(empty.code, 2);
    assert.doesNotMatch(empty.stderr, /warning: -e/);
  });

  test('--env-file - reads stdin: bad keys named, values never shown, no argv warning', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '--env-file', '-'], env, 120_000, `GOOD=1\nBAD.NAME=${v}\n`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /update: --env-file - \(stdin\): invalid env vars \(1 problem\)/);
    assert.match(r.stderr, /envs\[1\]: key starting "BAD" has a character not allowed/);
    assert.doesNotMatch(r.stderr, /warning: -e/);
    assertNoLeak(r, [v]);
    const none = await cli(['update', '--cvm', 'cvm-x', '--env-file', '-'], env, 120_000, '# nothing here\n');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /update: --env-file - \(stdin\) holds no variables/);
  });

  test('--keys must cover the env', async () => {
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', '-e', 'B=2', '--keys', 'A,C'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--keys must include every key of the env; missing: B/);
  });

  test('bad env key names in -e name the key problem, never the value', async () => {
    const v1 = secret();
    const v2 = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', `1ST=${v1}`, '-e', `MY-KEY=${v2}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid env vars \(2 problems\)/);
    assert.match(r.stderr, /-e #1: key "1ST" must start with a letter or "_"/);
    assert.match(r.stderr, /-e #2: key starting "MY" has a character not allowed in env names at position 2/);
    assertNoLeak(r, [v1, v2]);
  });

  test('bad env key names in --env-file, never the value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dce-cli-'));
    try {
      const v = secret();
      const file = join(dir, 'bad.env');
      writeFileSync(file, `GOOD=1\nBAD.NAME=${v}\n`);
      const r = await cli(['update', '--cvm', 'cvm-x', '--env-file', file], env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--env-file .*bad\.env: invalid env vars \(1 problem\)/);
      assert.match(r.stderr, /envs\[1\]: key starting "BAD" has a character not allowed/);
      assertNoLeak(r, [v]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('unknown option, shown without its value', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', `--token=${v}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /update: unknown option --token/);
    assertNoLeak(r, [v]);
  });

  test('a stray argument (a KEY=VALUE without -e) is counted, not echoed', async () => {
    const v = secret();
    const r = await cli(['update', '--cvm', 'cvm-x', '-e', 'A=1', `B=${v}`], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expects no arguments, got 1 argument \(variables are passed as -e KEY=VALUE\)/);
    assertNoLeak(r, [v]);
  });

  test('a flag without its value', async () => {
    const r = await cli(['update', '--cvm', '-e', 'A=1'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cvm needs a value/);
  });

  test('use-tx checks the hash', async () => {
    const r = await cli(['use-tx', 'cvm-x', '0x1234'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /transaction hash must be 0x followed by 64 hex digits/);
  });

  test('status needs an id', async () => {
    const r = await cli(['status'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /status: expects <cvm-id\|workflow-id>, got 0 arguments/);
  });

  test('missing configuration names the variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dce-cli-'));
    try {
      const empty = join(dir, 'empty.env');
      writeFileSync(empty, '');
      const r = await cli(['status', 'cvm-x', '--env-from', empty], env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /PAYLOAD_ENCRYPTION_KEYS is required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('against the local stack', () => {
  let stack: TestStack;
  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  let closeWorker: (() => Promise<void>) | undefined;
  let env: Record<string, string>;
  let secrets: string[];

  before(async () => {
    stack = await useStack();
    // Our own queue: other test files run workers of their own against the same server.
    env = { ...stack.env, TEMPORAL_TASK_QUEUE: `cli-test-${randomUUID()}` };
    secrets = ['PAYLOAD_ENCRYPTION_KEYS', 'SIGNER_PRIVATE_KEY', 'PHALA_API_KEY', 'SIM_ADMIN_TOKEN']
      .map((k) => env[k])
      .filter((v): v is string => Boolean(v))
      .flatMap((v) => [v, ...v.split(',').map((p) => p.slice(p.indexOf(':') + 1))]);
    // Loaded here, not at the top: the usage tests need no worker and still run when a module
    // the worker pulls in is broken.
    const { createWorker } = await import('../src/worker.ts');
    const created = await createWorker({ env, worker: { shutdownGraceTime: '5 seconds' } });
    worker = created.worker;
    workerRun = worker.run();
    closeWorker = () => created.connection.close();
  });

  after(async () => {
    if (worker && worker.getState() === 'RUNNING') worker.shutdown();
    await workerRun?.catch(() => {});
    await closeWorker?.();
    await stack?.release();
  });

  const childEnv = () => ({ ...offlineEnv(), ...env });
  const simBase = () => String(stack.info.simUrl ?? env.SIM_URL ?? String(stack.info.apiUrl ?? '').replace(/\/api\/v1\/?$/, ''));
  const simHeaders = () => ({ Authorization: `Bearer ${env.SIM_ADMIN_TOKEN}`, 'Content-Type': 'application/json' });

  /** A CVM of our own, so no other test's update of a seeded CVM gets in the way. */
  async function phalaCvm(): Promise<string> {
    const res = await fetch(`${simBase()}/_sim/cvms`, { method: 'POST', headers: simHeaders(), body: JSON.stringify({ kms: 'phala' }) });
    if (res.ok) return ((await res.json()) as { id: string }).id;
    const seeded = ((stack.info.cvms ?? []) as { id: string; kms: string }[]).find((c) => c.kms === 'phala');
    assert.ok(seeded, `no Phala-KMS CVM: POST /_sim/cvms answered ${res.status} and stack.info.cvms has none`);
    return seeded.id;
  }

  async function appliedEnv(cvmId: string): Promise<Record<string, string>> {
    const res = await fetch(`${simBase()}/_sim/cvms/${encodeURIComponent(cvmId)}/env`, { headers: simHeaders() });
    assert.equal(res.status, 200, `GET /_sim/cvms/${cvmId}/env`);
    return ((await res.json()) as { env: Record<string, string> }).env;
  }

  let updatedCvm: string | undefined;
  let updateResult: UpdateEnvResult | undefined;

  test('update --json on a Phala-KMS CVM prints one JSON result and no value', async () => {
    const cvmId = await phalaCvm();
    // A value with '=' in it, as a base64 token or URL query often has.
    const values = { DB_PASSWORD: secret(), API_TOKEN: `${secret()}==`, QUERY: `a=${secret()}&b=c` };
    const r = await cli(
      [
        'update',
        '--cvm',
        cvmId,
        ...Object.entries(values).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        '--request-id',
        `req-${randomUUID()}`,
        '--json',
      ],
      childEnv(),
    );
    assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'stdout holds exactly one line');
    const result = JSON.parse(lines[0]!) as UpdateEnvResult;
    assert.equal(result.cvmId, cvmId);
    assert.equal(result.kms, 'phala');
    assert.equal(result.applied, true);
    assert.equal(typeof result.correlationId, 'string');
    assert.ok(result.correlationId.length > 0);
    assert.equal(result.transactionHash, undefined);
    assert.equal(typeof result.timings.totalMs, 'number');
    assert.ok(result.timings.phases.length > 0);
    // Progress went to stderr, one line per phase.
    assert.match(r.stderr, /phase1: sending the encrypted env/);
    assert.match(r.stderr, /applying: accepted \(correlation id /);
    assert.match(r.stderr, /completed/);
    assert.match(r.stderr, /DB_PASSWORD, API_TOKEN, QUERY/);
    assert.match(r.stderr, ARGV_WARNING);
    if (env.TEMPORAL_UI_URL) assert.ok(r.stderr.includes(`/workflows/cvm-env-${cvmId}`), 'the Temporal UI link is printed');
    assertNoLeak(r, [...Object.values(values), ...secrets]);
    assert.deepEqual(await appliedEnv(cvmId), values);
    updatedCvm = cvmId;
    updateResult = result;
  });

  test('status of that CVM afterwards', async (t) => {
    if (!updatedCvm || !updateResult) return t.skip('the update did not succeed');
    const j = await cli(['status', updatedCvm, '--json'], childEnv());
    assert.equal(j.code, 0, j.stderr);
    const body = JSON.parse(j.stdout) as { workflowId: string; state: string; status?: { phase: string }; result?: UpdateEnvResult };
    assert.equal(body.workflowId, `cvm-env-${updatedCvm}`);
    assert.equal(body.state, 'COMPLETED');
    assert.equal(body.status?.phase, 'completed');
    assert.equal(body.result?.correlationId, updateResult.correlationId);

    const h = await cli(['status', `cvm-env-${updatedCvm}`], childEnv());
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /state\s+COMPLETED/);
    assert.match(h.stdout, /phase\s+completed/);
    assert.ok(h.stdout.includes(updateResult.correlationId));
    assertNoLeak(h, secrets);
  });

  test('retry of a finished update is refused with exit 1', async (t) => {
    if (!updatedCvm) return t.skip('the update did not succeed');
    const r = await cli(['retry', updatedCvm], childEnv());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not running \(COMPLETED\); nothing to retry/);
  });

  test('status of an unknown CVM: exit 1', async () => {
    const r = await cli(['status', `no-such-cvm-${randomBytes(4).toString('hex')}`], childEnv());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no env update found for no-such-cvm-/);
  });

  test('update from --env-file, settings from --env-from, human output', async () => {
    const cvmId = await phalaCvm();
    const dir = mkdtempSync(join(tmpdir(), 'dce-cli-'));
    try {
      const v1 = secret();
      const v2 = secret();
      const envFile = join(dir, 'app.env');
      writeFileSync(envFile, `# app settings\nexport SESSION_KEY="${v1}"\nMULTI="line1\\n${v2}"\n`);
      const settings = join(dir, 'settings.env');
      writeFileSync(
        settings,
        Object.entries(env)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n'),
      );
      const r = await cli(['update', '--cvm', cvmId, '--env-file', envFile, '--env-from', settings], offlineEnv());
      assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`env of CVM ${cvmId} updated \\(Phala KMS\\), running with it`));
      assert.match(r.stdout, /total .* · API .* · chain .* · operator/);
      assertNoLeak(r, [v1, v2, ...secrets]);
      assert.deepEqual(await appliedEnv(cvmId), { SESSION_KEY: v1, MULTI: `line1\n${v2}` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('update --env-file - takes the env from stdin, as the README shows', async () => {
    const cvmId = await phalaCvm();
    const values = { STDIN_TOKEN: secret(), WITH_EQUALS: `${secret()}==` };
    const text = Object.entries(values)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    const r = await cli(['update', '--cvm', cvmId, '--env-file', '-', '--json'], childEnv(), 120_000, `${text}\n`);
    assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
    const result = JSON.parse(r.stdout.trim()) as UpdateEnvResult;
    assert.equal(result.cvmId, cvmId);
    assert.equal(result.applied, true);
    assert.match(r.stderr, /STDIN_TOKEN, WITH_EQUALS/);
    assert.doesNotMatch(r.stderr, /warning: -e/);
    assertNoLeak(r, [...Object.values(values), ...secrets]);
    assert.deepEqual(await appliedEnv(cvmId), values);
  });

  /** An on-chain CVM of our own on the app the signer does not own: the change must wait for an operator. */
  async function foreignCvm(): Promise<string> {
    const foreign = stack.info.apps.find((a) => !a.ownerIsSigner);
    assert.ok(foreign, 'the stack has no app owned by another key');
    const res = await fetch(`${simBase()}/_sim/cvms`, {
      method: 'POST',
      headers: simHeaders(),
      body: JSON.stringify({ kms: 'onchain', app_id: foreign.appId }),
    });
    assert.equal(res.status, 201, `POST /_sim/cvms answered ${res.status}`);
    return ((await res.json()) as { id: string }).id;
  }

  async function waitingUpdate(cvmId: string, values: Record<string, string>): Promise<RunningCli> {
    const run = startCli(
      ['update', '--cvm', cvmId, ...Object.entries(values).flatMap(([k, v]) => ['-e', `${k}=${v}`]), '--json'],
      childEnv(),
      180_000,
    );
    await waitFor(
      'the update to wait for an operator',
      () => /WAITING FOR AN OPERATOR/.test(run.output().stderr) || run.output().code !== null,
    );
    const { stderr } = run.output();
    assert.match(stderr, /is not the owner/);
    assert.match(
      stderr,
      /the owner's transaction:[\s\S]*to: +0x[0-9a-fA-F]{40}[\s\S]*value: 0[\s\S]*data: +0xdfc77223[0-9a-f]{64}/,
      'what to propose is printed',
    );
    assert.ok(stderr.includes(`npm run cli -- use-tx ${cvmId} 0x`), 'the use-tx command is printed');
    assert.ok(stderr.includes(`npm run cli -- abort ${cvmId}`), 'the abort command is printed');
    return run;
  }

  test("an update on an app the signer does not own waits; use-tx hands over the owner's registration", async () => {
    const cvmId = await foreignCvm();
    const values = { [`NEW_KEY_${randomBytes(3).toString('hex').toUpperCase()}`]: secret() };
    const run = await waitingUpdate(cvmId, values);

    const st = await cli(['status', cvmId, '--json'], childEnv());
    assert.equal(st.code, 0, st.stderr);
    const status = (JSON.parse(st.stdout) as { status: { phase: string; composeHash: string; appId: string } }).status;
    assert.equal(status.phase, 'awaiting_operator');
    assert.match(status.composeHash, /^(0x)?[0-9a-f]{64}$/);

    // The app's owner registers the hash, as a multisig would.
    const { createPublicClient, createWalletClient, encodeFunctionData, http, keccak256 } = await import('viem');
    const { privateKeyToAccount } = await import('viem/accounts');
    const { foundry } = await import('viem/chains');
    const { dstackAppAbi } = await import('../src/chain/dstack-app-abi.ts');
    const chain = { ...foundry, id: stack.info.chainId };
    const transport = http(stack.info.rpcUrl);
    const owner = createWalletClient({ chain, transport, account: privateKeyToAccount(stack.devKeys.other) });
    // Signed first and handed over before it is sent: once mined, the workflow would find it
    // on chain by itself and use-tx would have nothing left to do.
    const request = await owner.prepareTransactionRequest({
      to: status.appId as `0x${string}`,
      data: encodeFunctionData({ abi: dstackAppAbi, functionName: 'addComposeHash', args: [`0x${status.composeHash.replace(/^0x/, '')}`] }),
    });
    const raw = await owner.signTransaction(request);
    const hash = keccak256(raw);
    const handed = await cli(['use-tx', cvmId, hash], childEnv());
    assert.equal(handed.code, 0, handed.stderr);
    assert.match(handed.stderr, /sent use-tx to workflow/);
    await owner.sendRawTransaction({ serializedTransaction: raw });
    await createPublicClient({ chain, transport }).waitForTransactionReceipt({ hash, pollingInterval: 100 });

    const r = await run.done;
    assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as UpdateEnvResult;
    assert.equal(result.kms, 'onchain');
    assert.equal(result.transactionHash?.toLowerCase(), hash.toLowerCase());
    assert.match(r.stderr, /operator action received; continuing/);
    assert.match(r.stderr, /phase2: /);
    assertNoLeak(r, [...Object.values(values), ...secrets]);
    assert.deepEqual(await appliedEnv(cvmId), values);
  });

  test('abort ends a waiting update: exit 1 and an "aborted" JSON outcome', async () => {
    const cvmId = await foreignCvm();
    const values = { [`OTHER_KEY_${randomBytes(3).toString('hex').toUpperCase()}`]: secret() };
    const run = await waitingUpdate(cvmId, values);
    // The owner's wait takes a transaction, not a retry: the refusal's reason, exit 1.
    const retried = await cli(['retry', cvmId, '--json'], childEnv());
    assert.equal(retried.code, 1, retried.stderr);
    assert.match(retried.stderr, /error: retry refused: not waiting for a retry: it waits for .*\(it takes: useTransaction, abort\)/);
    assert.equal((JSON.parse(retried.stdout) as { sent: boolean }).sent, false);
    const aborted = await cli(['abort', cvmId, '--reason', 'changed my mind'], childEnv());
    assert.equal(aborted.code, 0, aborted.stderr);
    assert.match(aborted.stderr, /abort accepted \(changed my mind\)/);
    const r = await run.done;
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /update aborted: .*changed my mind/);
    const body = JSON.parse(r.stdout) as { outcome: string; error: string };
    assert.equal(body.outcome, 'aborted');
    assertNoLeak(r, [...Object.values(values), ...secrets]);
  });
});
