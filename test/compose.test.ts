// docker-compose.yml and the Dockerfile, checked by what runs on a machine without images:
// the compose file is parsed and held to the rules below, the worker's and codec server's
// environment from it is fed to the real configuration loaders, the monitoring files are
// cross-checked, and the local profile's contract deployment runs against a real anvil.
// The whole project is loaded by compose-go, the library `docker compose` parses with
// (tools/compose-check, built by `go build` into .cache/), as `docker compose config --quiet`
// loads it: interpolation from the env file, schema validation, profiles, resolved paths; the
// checker also requires every secret file and bind-mount source to exist. Broken copies must be
// refused by name. `docker compose config` runs on the same inputs too where it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { generatePayloadKeySpec } from '../src/codec.ts';
import { codecServerOptionsFromEnv } from '../src/codec-server.ts';
import { loadChainConfig, loadPhalaConfig, loadSignerKey, loadTemporalConfig } from '../src/config.ts';
import { METRICS } from '../src/observability/metric-names.ts';
import { loadTelemetryConfig } from '../src/observability/telemetry.ts';
import { shutdownGraceMs } from '../src/worker.ts';
import { anvilRpc } from '../src/dev/anvil.ts';
import { SEARCH_ATTRIBUTES } from '../src/dev/temporal-server.ts';
import { composeChecker } from './support/compose-check.ts';
import { useStack } from './support/stack.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test: unknown };
  restart?: string;
  profiles?: string[];
  secrets?: string[];
  command?: string[];
  deploy?: { replicas?: unknown };
  container_name?: string;
  ports?: string[];
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
};
const services = compose.services;
const oneShot = (s: Service) => s.restart === 'no';

/** ${VAR}, ${VAR:-default} and ${VAR:?message} against .env.example, as compose does. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    const v = vars[name];
    if (v !== undefined && v !== '') return v;
    if (op === '?') throw new Error(`${name} must be set in .env: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}
const envExample = Object.fromEntries(
  read('.env.example')
    .split('\n')
    .filter((l) => /^\w+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);

test('every image is pinned to a version; our own are built from the Dockerfile', () => {
  for (const [name, s] of Object.entries(services)) {
    assert.ok(s.image, `${name} has an image`);
    if (s.image.startsWith('durable-cvm-envs')) {
      const built = s.build ?? Object.values(services).find((o) => o.image === s.image && o.build)?.build;
      assert.ok(built, `${name}: our image is built here`);
      continue;
    }
    const tag = /:([^:/]+)$/.exec(s.image)?.[1];
    assert.ok(tag && tag !== 'latest' && /\d+\.\d+/.test(tag), `${name}: ${s.image} is not pinned to a version`);
  }
  assert.match(services.postgresql!.image!, /^postgres:16\./, 'PostgreSQL 16');
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, /ARG NODE_IMAGE=node:22\.\d+\.\d+-bookworm-slim/, 'Node 22 LTS on glibc slim, pinned');
});

test('long-running services have healthchecks; every dependency waits on a condition', () => {
  for (const [name, s] of Object.entries(services)) {
    if (!oneShot(s)) assert.ok(s.healthcheck?.test, `${name} has a healthcheck`);
    const deps = s.depends_on ?? {};
    assert.ok(!Array.isArray(deps), `${name}: depends_on uses conditions`);
    for (const [dep, { condition }] of Object.entries(deps)) {
      const target = services[dep];
      assert.ok(target, `${name} depends on unknown ${dep}`);
      assert.equal(condition, oneShot(target) ? 'service_completed_successfully' : 'service_healthy', `${name} → ${dep}`);
      if (!target.profiles) assert.ok(!s.profiles || s.profiles.length > 0);
      else
        assert.ok(
          s.profiles?.some((p) => target.profiles!.includes(p)),
          `${name} depends on ${dep} outside its profile`,
        );
    }
  }
  for (const required of [
    'postgresql',
    'temporal-schema',
    'temporal',
    'temporal-init',
    'temporal-ui',
    'codec-server',
    'worker',
    'prometheus',
    'grafana',
  ]) {
    assert.ok(services[required], `the ${required} service exists`);
    assert.equal(services[required]!.profiles, undefined, `${required} is in the default profile`);
  }
  for (const local of ['anvil', 'deploy-contracts', 'simulator']) assert.deepEqual(services[local]?.profiles, ['local']);
  assert.equal(services.worker!.container_name, undefined, 'the worker can scale');
  assert.equal(services.worker!.ports, undefined, 'no host port pins the worker to one replica');
});

function withSecretFiles(env: Record<string, string>, secrets: Record<string, string>): { env: Record<string, string>; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dce-compose-'));
  const out = { ...env };
  for (const [k, v] of Object.entries(env)) {
    const m = /^\/run\/secrets\/(\w+)$/.exec(v);
    if (!m) continue;
    assert.ok(k.endsWith('_FILE'), `${k}: secrets come in through *_FILE`);
    assert.ok(m[1]! in compose.secrets, `secret ${m[1]} is declared`);
    assert.ok(m[1]! in secrets, `the test has a value for ${m[1]}`);
    const path = join(dir, m[1]!);
    writeFileSync(path, `${secrets[m[1]!]}\n`);
    out[k] = path;
  }
  return { env: out, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const SECRET_VALUES = {
  payload_keys: generatePayloadKeySpec('k1'),
  phala_api_key: 'phak_test',
  signer_key: `0x${'11'.repeat(32)}`,
  codec_token: 'a-codec-token-of-enough-length',
};

test('the worker gets every variable it reads, secrets as files, and its configuration loads', () => {
  const raw = services.worker!.environment!;
  const env = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v), envExample)]));
  for (const secret of ['PAYLOAD_ENCRYPTION_KEYS', 'PHALA_API_KEY', 'SIGNER_PRIVATE_KEY']) {
    assert.ok(`${secret}_FILE` in env && !(secret in env), `${secret} comes from a file`);
  }
  for (const name of [
    'TEMPORAL_ADDRESS',
    'TEMPORAL_NAMESPACE',
    'TEMPORAL_TASK_QUEUE',
    'CHAIN_RPC_URLS',
    'METRICS_PORT',
    'WORKER_SHUTDOWN_GRACE_SECONDS',
  ]) {
    assert.ok(env[name], `${name} is provided`);
  }
  const files = withSecretFiles(env, SECRET_VALUES);
  try {
    // The loaders the worker runs at start: any missing or bad variable throws, by name.
    const temporal = loadTemporalConfig(files.env);
    assert.equal(temporal.address, 'temporal:7233');
    assert.equal(temporal.payloadKeys, SECRET_VALUES.payload_keys);
    assert.equal(loadPhalaConfig(files.env).apiKey, SECRET_VALUES.phala_api_key);
    assert.ok(loadChainConfig(files.env).size >= 1, 'at least one chain');
    assert.equal(loadSignerKey(files.env), SECRET_VALUES.signer_key);
    assert.equal(loadTelemetryConfig(files.env).metricsBind, `0.0.0.0:${env.METRICS_PORT}`);
    assert.ok(shutdownGraceMs(files.env) < 30_000, "drains within Kubernetes' 30 s");
  } finally {
    files.done();
  }
  for (const s of services.worker!.secrets ?? []) assert.ok(s in compose.secrets);
});

test('the codec server configuration loads; the UI points at it and passes the access token', () => {
  const env = Object.fromEntries(
    Object.entries(services['codec-server']!.environment!).map(([k, v]) => [k, interpolate(String(v), envExample)]),
  );
  const files = withSecretFiles(env, SECRET_VALUES);
  try {
    const o = codecServerOptionsFromEnv(files.env);
    assert.equal(o.port, 8888);
    assert.equal(o.host, '0.0.0.0');
    assert.equal(o.token, SECRET_VALUES.codec_token);
  } finally {
    files.done();
  }
  const ui = services['temporal-ui']!.environment!;
  assert.match(interpolate(ui.TEMPORAL_CODEC_ENDPOINT!, envExample), /:8888$/);
  assert.equal(ui.TEMPORAL_CODEC_PASS_ACCESS_TOKEN, 'true');
  const init = read('deploy/temporal/init-namespace.sh');
  // Every attribute a workflow sets, as the local stack registers them.
  for (const attr of Object.keys(SEARCH_ATTRIBUTES)) assert.match(init, new RegExp(`\\b${attr}\\b`), attr);
});

test('Prometheus scrapes the worker port; the dashboard and the alerts use our metrics', () => {
  const prom = parse(read('deploy/prometheus/prometheus.yml')) as {
    scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
  };
  const job = prom.scrape_configs.find((j) => j.dns_sd_configs?.some((d) => d.names.includes('worker')));
  assert.ok(job, 'a job discovers every worker replica');
  assert.equal(String(job.dns_sd_configs![0]!.port), services.worker!.environment!.METRICS_PORT);

  const dashboard = read('deploy/grafana/dashboards/cvm-envs.json');
  JSON.parse(dashboard);
  for (const name of Object.values(METRICS)) assert.ok(dashboard.includes(name), `the dashboard shows ${name}`);

  const alerts = parse(read('deploy/prometheus/alerts.yml')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const rules = alerts.groups.flatMap((g) => g.rules);
  const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr ?? '';
  assert.match(exprOf('EnvUpdateWaitingForOperator'), new RegExp(METRICS.awaitingOperator));
  assert.match(exprOf('EnvUpdateFailureRateHigh'), /outcome="failed"/);
  assert.match(exprOf('WorkflowTaskScheduleToStartSlow'), /schedule_to_start/);
  assert.match(exprOf('ActivityScheduleToStartSlow'), /schedule_to_start/);
});

test('the Dockerfile runs the worker from dist as a non-root user with production dependencies and a healthcheck', () => {
  const dockerfile = read('Dockerfile');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
  assert.match(runtime, /AS runtime/);
  assert.match(runtime, /^USER node$/m);
  assert.match(runtime, /^HEALTHCHECK .*dist\/healthcheck\.js/m);
  assert.match(runtime, /^CMD \["node", "dist\/worker\.js"\]$/m);
  assert.match(runtime, /COPY --from=prod-deps \/app\/node_modules/);
  assert.doesNotMatch(runtime, /COPY (\.\/)?src|tsx/, 'no sources or tsx in the runtime image');
  assert.match(dockerfile, /npm ci --omit=dev/);
  assert.match(runtime, /WORKER_SHUTDOWN_GRACE_SECONDS=25/);
});

test("local profile: the contract deployment job deploys to a real anvil and writes the simulator's stack.json", async () => {
  const stack = await useStack();
  const dir = mkdtempSync(join(tmpdir(), 'dce-local-'));
  try {
    const env = { ...process.env, CHAIN_RPC_URL: stack.info.rpcUrl };
    await run(process.execPath, ['--import', 'tsx', 'src/dev/deploy-local.ts', '--stack-dir', dir], { cwd: root, env });
    const written = JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')) as {
      chainId: number;
      apps: { name: string; appId: string }[];
    };
    assert.equal(written.chainId, stack.info.chainId);
    assert.deepEqual(written.apps.map((a) => a.name).sort(), ['app-foreign', 'app-signer-1', 'app-signer-shared']);
    for (const app of written.apps) assert.notEqual(await anvilRpc<string>(stack.info.rpcUrl, 'eth_getCode', [app.appId, 'latest']), '0x');
    // Again: the same contracts are kept.
    await run(process.execPath, ['--import', 'tsx', 'src/dev/deploy-local.ts', '--stack-dir', dir], { cwd: root, env });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')).apps, written.apps);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await stack.release();
  }
});

/** `docker compose`, when this machine has the plugin; the compose-go checker runs either way. */
const dockerCompose = run('docker', ['compose', 'version']).then(
  () => true,
  () => false,
);

interface Refusal {
  code: number;
  stderr: string;
}
/** Runs a compose loader; resolves to its refusal, or to undefined when it accepted the project. */
async function load(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Refusal | undefined> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: root, env });
    assert.equal(stdout.trim(), '', `${command} prints nothing with --quiet`);
    assert.equal(stderr.trim(), '', `${command} warns about nothing`);
    return undefined;
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stderr: e.stderr ?? '' };
  }
}

/**
 * The project as `docker compose --env-file F --profile local -f docker-compose.yml -f S config
 * --quiet` loads it: `.env.example` as the env file, and S pointing every declared secret at a
 * temporary file, since ./secrets is the operator's and absent from a clone. `edit` changes the
 * compose file or the env file first, in a temporary copy with the repository as project directory,
 * or leaves one secret's file unwritten.
 */
async function loadProject(edit: { compose?: (yml: string) => string; env?: (env: string) => string; missingSecret?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dce-compose-config-'));
  try {
    const secretsOverride = join(dir, 'secrets.override.yml');
    const lines = ['secrets:'];
    for (const name of Object.keys(compose.secrets)) {
      if (name !== edit.missingSecret) writeFileSync(join(dir, name), 'x');
      lines.push(`  ${name}: { file: ${JSON.stringify(join(dir, name))} }`);
    }
    writeFileSync(secretsOverride, `${lines.join('\n')}\n`);
    const envFile = join(dir, '.env');
    writeFileSync(envFile, (edit.env ?? ((e) => e))(read('.env.example')));
    let composeFile = join(root, 'docker-compose.yml');
    if (edit.compose) {
      composeFile = join(dir, 'docker-compose.yml');
      writeFileSync(composeFile, edit.compose(read('docker-compose.yml')));
    }
    const args = ['--project-directory', root, '--env-file', envFile, '--profile', 'local', '-f', composeFile];
    args.push('-f', secretsOverride);
    // Only what running needs: a variable exported in the shell would win over the env file.
    const checker = await load(await composeChecker(), args, { PATH: process.env.PATH });
    const docker = (await dockerCompose)
      ? await load('docker', ['compose', ...args, 'config', '--quiet'], { PATH: process.env.PATH, HOME: process.env.HOME })
      : undefined;
    return { checker, docker, dockerRan: await dockerCompose };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("compose's own loader (and docker compose config, where installed) accepts the file", async () => {
  const { checker, docker } = await loadProject();
  assert.equal(checker, undefined, `compose-check refused the project: ${checker?.stderr}`);
  assert.equal(docker, undefined, `docker compose config refused the project: ${docker?.stderr}`);
});

test("compose's own loader refuses a broken compose or env file, naming the problem", async (t) => {
  const cases: { name: string; edit: Parameters<typeof loadProject>[0]; message: RegExp; docker: boolean }[] = [
    {
      name: 'an unknown top-level key',
      edit: { compose: (y) => y.replace(/^volumes:$/m, 'volumez:') },
      message: /additional properties 'volumez' not allowed/,
      docker: true,
    },
    {
      name: 'a misspelt service field',
      edit: { compose: (y) => y.replace('stop_grace_period: 30s', 'stop_grace_perod: 30s') },
      message: /services\.worker\.stop_grace_perod false schema/,
      docker: true,
    },
    {
      name: 'a field of the wrong type',
      edit: { compose: (y) => y.replace("ports: ['8787:8787']", 'ports: 8787') },
      message: /services\.simulator\.ports must be a array/,
      docker: true,
    },
    {
      name: 'a required variable missing from the env file',
      edit: { env: (e) => e.replace(/^CHAIN_RPC_URLS=.*$/m, '') },
      message: /required variable CHAIN_RPC_URLS is missing a value: set CHAIN_RPC_URLS in \.env/,
      docker: true,
    },
    {
      name: 'a secret whose file does not exist',
      edit: { missingSecret: 'signer_key' },
      message: /secret "signer_key": file \S*\/signer_key does not exist/,
      docker: false,
    },
    {
      name: 'a bind mount of a file that does not exist',
      edit: { compose: (y) => y.replace('./deploy/temporal/setup-schema.sh:', './deploy/temporal/setup-schema.sh.missing:') },
      message: /service "temporal-schema": bind-mount source \S*setup-schema\.sh\.missing does not exist/,
      docker: false,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const { checker, docker, dockerRan } = await loadProject(c.edit);
      assert.ok(checker, 'compose-check accepted it');
      assert.equal(checker.code, 1);
      assert.match(checker.stderr, c.message);
      // `config` leaves host files to `up`: docker compose is only held to the loader's cases.
      if (dockerRan && c.docker) assert.ok(docker, 'docker compose config accepted it');
    });
  }
});
