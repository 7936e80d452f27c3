// `npm run demo`: the whole flow on a throwaway local stack. Two updates run through a real
// worker: one on an on-chain-KMS CVM with new allowed keys (465, addComposeHash, confirmations,
// phase 2) and one on a Phala-KMS CVM; the simulator then confirms each CVM runs with exactly
// what was sent. `--keep` leaves the stack up afterwards so the Temporal UI can be browsed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startEnvUpdate } from '../client.ts';
import { createDataConverter } from '../codec.ts';
import { createRedactor, followUpdate, formatTimings } from '../progress.ts';
import type { EnvVar, UpdateEnvResult } from '../workflows/definitions.ts';
import { createWorker } from '../worker.ts';
import { defaultServices } from './services.ts';
import { startStack, type Stack } from './stack.ts';

interface SimCvm {
  id: string;
  appId: string;
  kms: 'onchain' | 'phala';
  ownerIsSigner: boolean;
}

class DemoFailure extends Error {}

const keep = process.argv.includes('--keep');
const secrets: string[] = [];
const redact = (text: string) => createRedactor(secrets)(text);
const say = (line = '') => process.stdout.write(`${redact(line)}\n`);

/** Random values, so nothing secret-looking is written into the source. */
function token(bytes = 24): string {
  const v = randomBytes(bytes).toString('base64url');
  secrets.push(v);
  return v;
}

function simHeaders(stack: Stack): Record<string, string> {
  const admin = String(stack.info.simAdminToken ?? stack.env.SIM_ADMIN_TOKEN ?? '');
  return { Authorization: `Bearer ${admin}`, Accept: 'application/json' };
}

/** Compares what the CVM runs with to what was sent, naming keys only. */
async function checkApplied(stack: Stack, cvm: SimCvm, sent: EnvVar[], result: UpdateEnvResult): Promise<void> {
  // The admin surface sits at the server root, beside /api/v1.
  const base = String(stack.info.simUrl ?? stack.env.SIM_URL ?? String(stack.info.apiUrl ?? '').replace(/\/api\/v1\/?$/, ''));
  const url = `${base.replace(/\/+$/, '')}/_sim/cvms/${encodeURIComponent(cvm.id)}/env`;
  const res = await fetch(url, { headers: simHeaders(stack) });
  if (!res.ok) throw new DemoFailure(`the simulator's inspection endpoint answered ${res.status} for CVM ${cvm.id}`);
  const body = (await res.json()) as { env?: Record<string, string>; dropped_keys?: string[]; correlation_id?: string | null };
  const applied = body.env ?? {};
  const problems: string[] = [];
  for (const { key, value } of sent) {
    if (!(key in applied)) problems.push(`${key} is missing`);
    else if (applied[key] !== value) problems.push(`${key} has a different value`);
  }
  const extra = Object.keys(applied).filter((k) => !sent.some((e) => e.key === k));
  if (extra.length > 0) problems.push(`unexpected keys ${extra.join(', ')}`);
  if (body.dropped_keys && body.dropped_keys.length > 0) problems.push(`the guest dropped ${body.dropped_keys.join(', ')}`);
  if (body.correlation_id && body.correlation_id !== result.correlationId) {
    problems.push(`the CVM applied operation ${body.correlation_id}, not ${result.correlationId}`);
  }
  if (problems.length > 0) throw new DemoFailure(`CVM ${cvm.id} does not run with what was sent: ${problems.join('; ')}`);
  say(`  ✔ the simulator's CVM ${cvm.id} runs with exactly the ${sent.length} variables sent (${sent.map((e) => e.key).join(', ')})`);
}

async function runUpdate(
  client: Client,
  taskQueue: string,
  cvm: SimCvm,
  env: EnvVar[],
  allowedKeys: string[] | undefined,
  signal: AbortSignal,
): Promise<UpdateEnvResult> {
  const { handle, workflowId } = await startEnvUpdate(
    client,
    { cvmId: cvm.id, env, allowedKeys, requestId: `demo-${randomBytes(6).toString('hex')}` },
    { taskQueue },
  );
  say(`  workflow ${workflowId}; keys ${env.map((e) => e.key).join(', ')}${allowedKeys ? `; allowed keys ${allowedKeys.join(', ')}` : ''}`);
  const outcome = await followUpdate(handle, cvm.id, { write: (l) => say(`  ${l}`), label: cvm.kms, signal });
  if (!outcome) throw new DemoFailure('interrupted');
  if (!outcome.ok) throw new DemoFailure(`the update of CVM ${cvm.id} ${outcome.aborted ? 'was aborted' : 'failed'}: ${outcome.message}`);
  return outcome.result;
}

function printTimings(label: string, r: UpdateEnvResult): void {
  say(`  ${label}: ${r.kms} KMS, correlation ${r.correlationId}${r.transactionHash ? `, tx ${r.transactionHash} (block ${r.blockNumber})` : ''}`);
  for (const line of formatTimings(r.timings)) say(`    ${line}`);
}

async function main(): Promise<number> {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Another runtime is installed already: its logger stays.
  }
  const interrupt = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      say('\ninterrupted: stopping the worker and the stack…');
      interrupt.abort();
    } else if (interrupts >= 3) {
      process.exit(130);
    } else {
      say('still stopping (Ctrl-C once more to quit at once, leaving processes behind)');
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const interrupted = new Promise<never>((_, reject) =>
    interrupt.signal.addEventListener('abort', () => reject(new DemoFailure('interrupted')), { once: true }),
  );
  interrupted.catch(() => {});
  // Each step is raced with Ctrl-C; the started things are still awaited and stopped below.
  const step = <T>(p: Promise<T>) => Promise.race([p, interrupted]);

  const dataDir = mkdtempSync(join(tmpdir(), 'dce-demo-'));
  let failed = true;
  let stackPromise: Promise<Stack> | undefined;
  let workerPromise: ReturnType<typeof createWorker> | undefined;
  let workerRun: Promise<void> | undefined;
  let connection: Connection | undefined;
  try {
    say(`starting the local stack in ${dataDir} (Temporal, anvil, contracts, Phala Cloud simulator)…`);
    stackPromise = startStack({ dataDir, services: defaultServices(), log: (l) => say(`  [stack] ${l}`) });
    const stack = await step(stackPromise);
    secrets.push(...Object.entries(stack.env).filter(([k]) => /KEY|TOKEN|SECRET/.test(k)).map(([, v]) => v));
    const cvms = (stack.info.cvms ?? []) as SimCvm[];
    const onchain = cvms.find((c) => c.kms === 'onchain' && c.ownerIsSigner);
    const phala = cvms.find((c) => c.kms === 'phala');
    if (!onchain || !phala) {
      throw new DemoFailure(
        `the stack offers no ${!onchain ? 'on-chain-KMS CVM whose app the signer owns' : 'Phala-KMS CVM'} ` +
          `(stack.info.cvms has ${cvms.length}); is the simulator part of defaultServices()?`,
      );
    }

    // Our own queue: a worker left over from `npm run worker` must not take the demo's tasks.
    const taskQueue = `demo-${randomBytes(4).toString('hex')}`;
    const env = { ...process.env, ...stack.env, TEMPORAL_TASK_QUEUE: taskQueue };
    // A short grace: the demo stops only when nothing is in flight, or on Ctrl-C.
    workerPromise = createWorker({ env, worker: { shutdownGraceTime: '3 seconds' } });
    const { worker } = await step(workerPromise);
    workerRun = worker.run();
    workerRun.catch(() => {});
    connection = await step(Connection.connect({ address: stack.info.temporalAddress }));
    const client = new Client({
      connection,
      namespace: stack.info.temporalNamespace,
      dataConverter: createDataConverter(stack.env.PAYLOAD_ENCRYPTION_KEYS!),
    });

    say('');
    say(`Temporal UI: ${stack.info.temporalUiUrl}/namespaces/${stack.info.temporalNamespace}/workflows`);
    say(`worker polling task queue ${taskQueue}`);

    // New key names each run, so the allowed keys always change and phase 1 answers 465.
    const suffix = randomBytes(3).toString('hex').toUpperCase();
    const onchainEnv: EnvVar[] = [
      { key: `DEMO_API_TOKEN_${suffix}`, value: token() },
      { key: 'DEMO_DATABASE_URL', value: `postgres://demo:${token(12)}@db.internal:5432/app` },
      { key: 'DEMO_LOG_LEVEL', value: 'info' },
    ];
    const onchainAllowed = [...onchainEnv.map((e) => e.key), `DEMO_FEATURE_FLAG_${suffix}`];
    const phalaEnv: EnvVar[] = [
      { key: 'DEMO_SESSION_SECRET', value: token(32) },
      { key: `DEMO_WEBHOOK_KEY_${suffix}`, value: token() },
    ];

    say('');
    say(`1. on-chain KMS: CVM ${onchain.id} (app ${onchain.appId}), with new allowed keys`);
    const r1 = await step(runUpdate(client, taskQueue, onchain, onchainEnv, onchainAllowed, interrupt.signal));
    if (!r1.transactionHash) throw new DemoFailure('the on-chain update finished without a registration transaction: the two-phase path did not run');
    await step(checkApplied(stack, onchain, onchainEnv, r1));

    say('');
    say(`2. Phala KMS: CVM ${phala.id} (app ${phala.appId})`);
    const r2 = await step(runUpdate(client, taskQueue, phala, phalaEnv, undefined, interrupt.signal));
    await step(checkApplied(stack, phala, phalaEnv, r2));

    say('');
    say('timings');
    printTimings(`on-chain ${onchain.id}`, r1);
    printTimings(`Phala    ${phala.id}`, r2);
    failed = false;

    if (keep && !interrupt.signal.aborted) {
      say('');
      say(`--keep: the stack stays up; Temporal UI ${stack.info.temporalUiUrl}. Ctrl-C stops it.`);
      await new Promise<void>((resolve) => interrupt.signal.addEventListener('abort', () => resolve(), { once: true }));
    }
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    say('');
    say(`demo FAILED: ${message.split('\n')[0]}`);
    if (!(err instanceof DemoFailure) && err instanceof Error && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    return 1;
  } finally {
    say('stopping the worker and the stack…');
    await connection?.close().catch(() => {});
    const created = await workerPromise?.catch(() => undefined);
    if (created) {
      if (created.worker.getState() === 'RUNNING') created.worker.shutdown();
      await workerRun?.catch(() => {});
      await created.connection.close().catch(() => {});
    }
    const stack = await stackPromise?.catch(() => undefined);
    await stack?.stop().catch((err: unknown) => say(`could not stop the stack cleanly: ${(err as Error).message}`));
    if (failed && !interrupt.signal.aborted) say(`logs kept in ${dataDir} (temporal.log, anvil.log)`);
    else rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

process.exit(await main());
