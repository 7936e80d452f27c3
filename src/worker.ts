#!/usr/bin/env node
// The worker process: `npm run worker`, configured from the environment (the local
// stack's .data/stack.env works as is).
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { privateKeyToAccount } from 'viem/accounts';
import { createActivities, type ActivityDeps } from './activities/index.ts';
import { createDataConverter } from './codec.ts';
import {
  loadApplyWatchConfig,
  loadChainConfig,
  loadKmsTrustConfig,
  loadPhalaConfig,
  loadSealedEnvCacheBytes,
  loadWorkerTuning,
  loadSignerKey,
  loadTemporalConfig,
  ConfigError,
} from './config.ts';
import { PhalaCloudClient } from './phala/api-client.ts';
import { SealedEnvCache } from './activities/sealed-env-cache.ts';
import { isMainModule } from './entry.ts';
import { apiErrorMetrics } from './observability/activity-interceptor.ts';
import { startOperatorGauge } from './observability/operator-gauge.ts';
import { installRuntime, loadTelemetryConfig } from './observability/telemetry.ts';
import { builtBundlePath, WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from './workflow-bundling.ts';

export { WORKFLOWS_PATH };

/**
 * Default time a stopping worker gives running activities before it cancels them: under
 * Kubernetes' 30 s termination grace, so the worker exits before it is SIGKILLed. A cut
 * activity is retried elsewhere once its 10 s heartbeat timeout passes.
 */
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 25;

export function shutdownGraceMs(env: NodeJS.ProcessEnv): number {
  const raw = env.WORKER_SHUTDOWN_GRACE_SECONDS?.trim();
  if (!raw) return DEFAULT_SHUTDOWN_GRACE_SECONDS * 1000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0)
    throw new ConfigError('WORKER_SHUTDOWN_GRACE_SECONDS must be a number of seconds (0 or more)');
  return seconds * 1000;
}

export function activityDepsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const phala = loadPhalaConfig(env);
  const key = loadSignerKey(env);
  return {
    phala: new PhalaCloudClient(phala),
    chains: loadChainConfig(env),
    signer: key ? privateKeyToAccount(key) : undefined,
    ...loadApplyWatchConfig(env),
    ...loadKmsTrustConfig(env),
    sealedEnvCache: new SealedEnvCache(loadSealedEnvCacheBytes(env)),
  };
}

export interface CreateWorkerOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides for tests (e.g. injected deps or a prebuilt bundle). */
  deps?: ActivityDeps;
  worker?: Partial<WorkerOptions>;
}

export async function createWorker(opts: CreateWorkerOptions = {}): Promise<{ worker: Worker; connection: NativeConnection }> {
  const env = opts.env ?? process.env;
  const temporal = loadTemporalConfig(env);
  const deps = opts.deps ?? activityDepsFromEnv(env);
  const grace = shutdownGraceMs(env);
  const tuning = loadWorkerTuning(env);
  const connection = await NativeConnection.connect(temporal.connection);
  const source = workflowSource(env);
  try {
    const worker = await Worker.create({
      connection,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      // A prebuilt bundle (npm run build puts one in dist/) starts a worker in about a second
      // instead of bundling the workflow code at every start.
      ...source,
      activities: createActivities(deps),
      dataConverter: createDataConverter(temporal.payloadKeys, { acceptUnencrypted: temporal.acceptUnencrypted }),
      ...tuning,
      shutdownGraceTime: grace,
      // Then stop waiting for anything else, inside the same budget.
      shutdownForceTime: grace + 2000,
      interceptors: {
        activity: [apiErrorMetrics],
        // A bundle carries its workflow interceptors already.
        ...(source.workflowBundle ? {} : { workflowModules: WORKFLOW_INTERCEPTOR_MODULES }),
      },
      ...opts.worker,
    });
    return { worker, connection };
  } catch (err) {
    await connection.close();
    throw err;
  }
}

function workflowSource(env: NodeJS.ProcessEnv): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  const codePath = env.WORKFLOW_BUNDLE_PATH || builtBundlePath();
  return codePath ? { workflowBundle: { codePath } } : { workflowsPath: WORKFLOWS_PATH };
}

export async function main(): Promise<void> {
  let created: Awaited<ReturnType<typeof createWorker>>;
  let telemetry: ReturnType<typeof loadTelemetryConfig>;
  let logger: ReturnType<typeof installRuntime>;
  try {
    telemetry = loadTelemetryConfig();
    logger = installRuntime(telemetry);
    created = await createWorker();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const temporal = loadTemporalConfig();
  const stopGauge = telemetry.metricsBind
    ? startOperatorGauge({
        connection: created.connection,
        namespace: temporal.namespace,
        meter: Runtime.instance().metricMeter,
        intervalMs: telemetry.operatorGaugeIntervalMs,
        onError: (err) => logger.warn('could not count the updates waiting for an operator', { error: err }),
      })
    : undefined;
  // Worker.run() handles SIGINT/SIGTERM itself: it stops polling and drains within the grace time.
  logger.info('polling task queue', {
    taskQueue: temporal.taskQueue,
    namespace: temporal.namespace,
    metrics: telemetry.metricsBind ?? 'off',
  });
  await created.worker.run();
  stopGauge?.();
  await created.connection.close();
}

if (isMainModule(import.meta.url)) {
  await main();
}
