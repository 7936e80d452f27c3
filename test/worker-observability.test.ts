// The worker process as operations see it: Prometheus /metrics at METRICS_PORT with the
// SDK's metrics and ours, and JSON log lines that carry workflow and run ids but no value.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { abortEnvUpdate, awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { readFileSync } from 'node:fs';
import { freePort } from '../src/dev/free-port.ts';
import { checkHealth } from '../src/healthcheck.ts';
import { METRICS } from '../src/observability/metric-names.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { createHarness, type Harness } from './support/update-harness.ts';

let stack: TestStack;
let h: Harness;
let worker: ChildProcess;
let exited: Promise<number | null>;
let stderr = '';
let metricsUrl: string;

before(async () => {
  stack = await useStack();
  h = await createHarness(stack);
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  worker = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    env: {
      ...process.env,
      ...h.env,
      METRICS_PORT: String(port),
      METRICS_HOST: '127.0.0.1',
      OPERATOR_GAUGE_INTERVAL_SECONDS: '1',
      LOG_LEVEL: 'INFO',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exited = new Promise((resolve) => worker.once('exit', (code) => resolve(code)));
  worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!/polling task queue/.test(stderr)) {
    assert.ok(worker.exitCode === null && Date.now() < deadline, `the worker did not start: ${stderr}`);
    await sleep(100);
  }
});
after(async () => {
  if (worker?.exitCode === null) worker.kill('SIGTERM');
  await exited;
  await h?.close();
  await stack?.release();
});

type Sample = { name: string; labels: Record<string, string>; value: number };

async function scrape(): Promise<Sample[]> {
  const text = await (await fetch(metricsUrl)).text();
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
      assert.ok(m, `unparsable metrics line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

const sum = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

async function eventually(what: string, probe: (s: Sample[]) => boolean, timeoutMs = 20_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const samples = await scrape();
    if (probe(samples)) return samples;
    assert.ok(
      Date.now() < deadline,
      `metrics never showed ${what}: ${samples
        .filter((x) => x.name.includes('cvm_env'))
        .map((x) => `${x.name}${JSON.stringify(x.labels)}=${x.value}`)
        .join('\n')}`,
    );
    await sleep(250);
  }
}

// Ours carry no prefix; the SDK's are temporal_*.
const ours = (n: string, suffix = '') => `${n}${suffix}`;
const secrets: string[] = [];

test('an on-chain update with an API hiccup: started, completed, phase durations, registration sent, API error by kind', async () => {
  const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
  await h.sim.addFaults({ rules: [{ route: 'GET /cvms/{id}', cvmId: cvm.id, error: { status: 503 }, times: 1 }] });
  const env = { BASE: `obs-${randomBytes(8).toString('hex')}`, OBS_NEW: `obs-${randomBytes(8).toString('hex')}` };
  secrets.push(...Object.values(env));
  const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.ok(result.transactionHash);

  const s = await eventually('the completed update', (x) => sum(x, ours(METRICS.updatesFinished, '_total'), { outcome: 'completed' }) >= 1);
  assert.equal(sum(s, ours(METRICS.updatesStarted, '_total'), { kms: 'onchain' }), 1);
  assert.equal(sum(s, ours(METRICS.updatesFinished, '_total'), { kms: 'onchain', outcome: 'completed' }), 1);
  assert.equal(sum(s, ours(METRICS.registrationTransactions, '_total'), { event: 'signed' }), 1);
  assert.equal(sum(s, ours(METRICS.registrationTransactions, '_total'), { event: 'sent' }), 1);
  assert.equal(sum(s, ours(METRICS.registrationTransactions, '_total'), { event: 'replaced' }), 0);
  assert.ok(sum(s, ours(METRICS.apiErrors, '_total'), { kind: 'transient', activity: 'resolveCvm' }) >= 1, 'the 503 was counted');
  for (const phase of ['resolving', 'encrypting', 'phase1', 'registering', 'phase2', 'applying']) {
    assert.equal(sum(s, ours(METRICS.phaseDuration, '_count'), { phase, kms: 'onchain' }), 1, `one ${phase} duration`);
  }
  // On a quick chain the manager answers `confirmed` before a `mined` answer is due: the
  // update goes from registering straight on, and the wait for depth counts as registering.
  assert.ok(sum(s, ours(METRICS.phaseDuration, '_count'), { phase: 'confirming', kms: 'onchain' }) <= 1, 'at most one confirming duration');
  assert.ok(sum(s, ours(METRICS.phaseDuration, '_sum'), { phase: 'registering' }) > 0);
  // The SDK's own metrics share the endpoint.
  assert.ok(
    s.some((x) => x.name.startsWith('temporal_activity_execution_latency')),
    'SDK activity latency',
  );
  assert.ok(
    s.some((x) => x.name.startsWith('temporal_workflow_task_schedule_to_start_latency')),
    'SDK schedule-to-start latency',
  );
});

test('a change waiting for an operator shows in the gauge until it is aborted', async () => {
  const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(false), allowedEnvs: ['A'] });
  const env = { A: `obs-${randomBytes(8).toString('hex')}`, OBS_WAIT: `obs-${randomBytes(8).toString('hex')}` };
  secrets.push(...Object.values(env));
  const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
  for (;;) {
    const st = await getEnvUpdateStatus(h.client, cvm.id).catch(() => undefined);
    if (st?.phase === 'awaiting_operator') break;
    await sleep(200);
  }
  // The gauge counts every waiting change in the namespace (other test files' too): at least ours.
  await eventually('the waiting change', (x) => sum(x, ours(METRICS.awaitingOperator)) >= 1);
  const waiting = await scrape();
  assert.equal(sum(waiting, ours(METRICS.operatorWaits, '_total'), { kms: 'onchain' }), 1);
  const before = sum(waiting, ours(METRICS.awaitingOperator));

  await abortEnvUpdate(h.client, cvm.id, 'observability test');
  await assert.rejects(awaitEnvUpdate(handle));
  const s = await eventually('the aborted update', (x) => sum(x, ours(METRICS.updatesFinished, '_total'), { outcome: 'aborted' }) >= 1);
  assert.equal(sum(s, ours(METRICS.updatesFinished, '_total'), { kms: 'onchain', outcome: 'aborted' }), 1);
  await eventually('the gauge going down', (x) => sum(x, ours(METRICS.awaitingOperator)) < before);
});

test('every metric the alert rules and the dashboard use is one the worker exports', async () => {
  const text = ['deploy/prometheus/alerts.yml', 'deploy/grafana/dashboards/cvm-envs.json'].map((f) => readFileSync(f, 'utf8')).join('\n');
  const used = new Set([...text.matchAll(/\b((?:cvm_env|temporal)_[a-z_]+)\b/g)].map((m) => m[1]!));
  assert.ok(used.size >= 8, [...used].join(' '));
  const exported = new Set((await scrape()).map((x) => x.name));
  for (const name of used) assert.ok(exported.has(name), `${name} is used but not exported`);
});

test('the image healthcheck passes against the running worker and fails without one', async () => {
  const port = new URL(metricsUrl).port;
  assert.equal(await checkHealth({ METRICS_PORT: port }), true);
  assert.equal(await checkHealth({ METRICS_PORT: String(await freePort()) }), false);
  assert.equal(await checkHealth({}), false);
});

test('worker logs are JSON lines with workflow and run ids, and hold no env value', () => {
  const lines = stderr.split('\n').filter(Boolean);
  assert.ok(lines.length > 5, stderr);
  const records = lines.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return assert.fail(`not a JSON log line: ${l}`);
    }
  });
  for (const r of records)
    assert.ok(typeof r.time === 'string' && typeof r.level === 'string' && typeof r.msg === 'string', JSON.stringify(r));
  const workflowLines = records.filter((r) => r.workflowId !== undefined);
  assert.ok(workflowLines.length > 0, 'the SDK logged workflow or activity lines');
  for (const r of workflowLines) assert.ok(typeof r.runId === 'string' || typeof r.workflowRunId === 'string', JSON.stringify(r));
  // Our phase lines come from the workflow logger: the SDK puts the ids on them.
  const phases = records.filter((r) => r.msg === 'update phase');
  assert.ok(phases.some((r) => r.phase === 'awaiting_operator') && phases.some((r) => r.phase === 'completed'), 'phase changes are logged');
  for (const r of phases) assert.ok(typeof r.workflowId === 'string' && typeof r.runId === 'string', JSON.stringify(r));
  assert.equal(secrets.length, 4);
  for (const v of secrets) assert.ok(!stderr.includes(v), 'an env value reached the log');
});
