// `npm run demo`: the whole flow on a throwaway local stack. Two updates run through a real
// worker: one on an on-chain-KMS CVM with new allowed keys (465, addComposeHash, confirmations,
// phase 2) and one on a Phala-KMS CVM; the simulator then confirms each CVM runs with exactly
// what was sent. `--keep` leaves the stack up afterwards so the Temporal UI can be browsed.
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { startEnvUpdate } from '../client.ts';
import { createRedactor, followUpdate, formatTimings } from '../progress.ts';
import type { EnvVar, UpdateEnvResult } from '../workflows/definitions.ts';
import { installQuietRuntime, interruptible, LocalSession } from './local-session.ts';
import type { Stack } from './stack.ts';

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
  say(
    `  ${label}: ${r.kms} KMS, correlation ${r.correlationId}${r.transactionHash ? `, tx ${r.transactionHash} (block ${r.blockNumber})` : ''}`,
  );
  for (const line of formatTimings(r.timings)) say(`    ${line}`);
}

async function main(): Promise<number> {
  installQuietRuntime();
  const interrupt = interruptible({ say, onceMore: 'Ctrl-C once more', failure: (message) => new DemoFailure(message) });
  const { step } = interrupt;
  const session = new LocalSession({ name: 'demo', say, step });
  let failed = true;
  try {
    say(`starting the local stack in ${session.dataDir} (Temporal, anvil, contracts, Phala Cloud simulator)…`);
    const stack = await session.startStack({ log: (l) => say(`  [stack] ${l}`) });
    secrets.push(
      ...Object.entries(stack.env)
        .filter(([k]) => /KEY|TOKEN|SECRET/.test(k))
        .map(([, v]) => v),
    );
    const cvms = (stack.info.cvms ?? []) as SimCvm[];
    const onchain = cvms.find((c) => c.kms === 'onchain' && c.ownerIsSigner);
    const phala = cvms.find((c) => c.kms === 'phala');
    if (!onchain || !phala) {
      throw new DemoFailure(
        `the stack offers no ${!onchain ? 'on-chain-KMS CVM whose app the signer owns' : 'Phala-KMS CVM'} ` +
          `(stack.info.cvms has ${cvms.length}); is the simulator part of defaultServices()?`,
      );
    }

    const { taskQueue } = session;
    const client = await session.startWorkerAndClient(stack);

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
    if (!r1.transactionHash)
      throw new DemoFailure('the on-chain update finished without a registration transaction: the two-phase path did not run');
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
    await session.close(failed && !interrupt.signal.aborted);
    interrupt.dispose();
  }
}

process.exit(await main());
