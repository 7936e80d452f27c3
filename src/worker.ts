#!/usr/bin/env node
// The worker process: `npm run worker`, configured from the environment (the local
// stack's .data/stack.env works as is).
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import { privateKeyToAccount } from 'viem/accounts';
import { createActivities, type ActivityDeps } from './activities/index.ts';
import { createDataConverter } from './codec.ts';
import { loadChainConfig, loadPhalaConfig, loadSignerKey, loadTemporalConfig, ConfigError } from './config.ts';
import { PhalaCloudClient } from './phala/api-client.ts';
import { crashInterceptorFromEnv } from './dev/crash-interceptor.ts';
import { isMainModule } from './entry.ts';
import { builtBundlePath, WORKFLOW_INTERCEPTOR_MODULES, WORKFLOWS_PATH } from './workflow-bundling.ts';

export { WORKFLOWS_PATH };

/** Longer than the longest activity attempt (60 s), so a graceful stop never cuts one off. */
export const SHUTDOWN_GRACE = '75 seconds';

export function activityDepsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const phala = loadPhalaConfig(env);
  const key = loadSignerKey(env);
  return {
    phala: new PhalaCloudClient(phala),
    chains: loadChainConfig(env),
    signer: key ? privateKeyToAccount(key) : undefined,
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
  const connection = await NativeConnection.connect({
    address: temporal.address,
    tls: temporal.tls,
    ...(temporal.apiKey ? { apiKey: temporal.apiKey } : {}),
  });
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
      dataConverter: createDataConverter(temporal.payloadKeys),
      shutdownGraceTime: SHUTDOWN_GRACE,
      interceptors: {
        activity: [crashInterceptorFromEnv(env)].filter((f) => f !== undefined),
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
  const level = (process.env.LOG_LEVEL ?? 'INFO').toUpperCase();
  if (!['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'].includes(level)) {
    console.error('LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR');
    process.exit(2);
  }
  Runtime.install({ logger: new DefaultLogger(level as LogLevel) });
  let created: Awaited<ReturnType<typeof createWorker>>;
  try {
    created = await createWorker();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  // Worker.run() handles SIGINT/SIGTERM itself: it stops polling and drains within the grace time.
  console.error(`[worker] polling task queue ${loadTemporalConfig().taskQueue}`);
  await created.worker.run();
  await created.connection.close();
}

if (isMainModule(import.meta.url)) {
  await main();
}
