// The transaction manager's paths on the time-skipping test server, its activities backed
// by an in-memory chain (test/support/fake-chain.ts): each case takes seconds. The same
// manager runs end to end on anvil in signer-manager.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { createTimeSkippingEnv } from './support/time-skipping.ts';
import { FakeChain, SIGNER } from './support/fake-chain.ts';
import {
  registerSignal,
  signerStatusQuery,
  signerWorkflowId,
  withdrawSignal,
  type RegistrationNotice,
  type SignerStatus,
} from '../src/workflows/signer-manager/definitions.ts';

let env: TestWorkflowEnvironment;
before(async () => {
  env = await createTimeSkippingEnv();
});
after(async () => {
  await env?.teardown();
});

const APP = '0x00000000000000000000000000000000000000a1';
const hashOf = (n: number) => n.toString(16).padStart(64, '0');

interface Case {
  chain: FakeChain;
  taskQueue: string;
  managerId: string;
  ask(
    composeHash: string,
    opts?: { appId?: string; confirmations?: number },
  ): Promise<{ askerId: string; answers: Promise<RegistrationNotice[]> }>;
  status(): Promise<SignerStatus>;
  until(what: string, probe: (s: SignerStatus) => boolean, timeoutMs?: number): Promise<SignerStatus>;
}

/** A manager of its own (one signer on its own chain id), a worker, and helpers to ask it. */
async function withManager(chain: FakeChain, body: (c: Case) => Promise<void>, maxHistoryEvents?: number): Promise<void> {
  const taskQueue = `signer-${randomUUID()}`;
  const chainId = 1000 + Math.floor(Math.random() * 1_000_000);
  const managerId = signerWorkflowId(chainId, SIGNER);
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./fixtures/signer-manager-workflows.ts', import.meta.url)),
    activities: chain.activities(),
  });
  const running = worker.run();
  const client = new Client({ connection: env.connection, namespace: env.namespace ?? 'default' });
  const askers: string[] = [];
  const c: Case = {
    chain,
    taskQueue,
    managerId,
    async ask(composeHash, opts = {}) {
      const askerId = `asker-${randomUUID()}`;
      // A plain client: waiting on a result through env.client would let the server skip time
      // while activities run in real time, and the manager's waits are measured in real blocks.
      const asker = await client.workflow.start('registrationAsker', { taskQueue, workflowId: askerId });
      askers.push(askerId);
      // Concurrent signal-with-starts of one id can be refused as "already started" (seen on the
      // test server); the requestRegistration activity retries such a refusal, and so does this.
      const signalWithStart = () =>
        env.client.workflow.signalWithStart('signerManagerWorkflow', {
          taskQueue,
          workflowId: managerId,
          args: [{ chainId, signer: SIGNER, ...(maxHistoryEvents ? { maxHistoryEvents } : {}) }],
          signal: registerSignal,
          signalArgs: [
            {
              requestId: askerId,
              appId: opts.appId ?? APP,
              composeHash,
              confirmations: opts.confirmations ?? 2,
              notifyWorkflowId: askerId,
            },
          ],
        });
      await signalWithStart().catch(async (err: unknown) => {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        await signalWithStart();
      });
      const answers = asker.result() as Promise<RegistrationNotice[]>;
      answers.catch(() => {}); // an asker left waiting is terminated at the end of the case
      return { askerId, answers };
    },
    status: () => env.client.workflow.getHandle(managerId).query(signerStatusQuery),
    async until(what, probe, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await c.status().catch(() => undefined);
        if (s && probe(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  try {
    await body(c);
  } finally {
    for (const id of [managerId, ...askers])
      await client.workflow
        .getHandle(id)
        .terminate('test over')
        .catch(() => {});
    worker.shutdown();
    await running;
  }
}

const confirmedOf = (answers: RegistrationNotice[]) => {
  const last = answers.at(-1)!;
  assert.equal(last.state, 'confirmed', JSON.stringify(answers));
  return last as Extract<RegistrationNotice, { state: 'confirmed' }>;
};
const min110 = (wei: string) => (BigInt(wei) * 110n + 99n) / 100n;

/** The registrationNotice signals a workflow received, counted in its history. */
async function noticesIn(workflowId: string): Promise<number> {
  const { events } = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'registrationNotice').length;
}

/** Longer than the manager's quiet time for intermediate answers (QUIET_NOTICE_MS, 5 s). */
const LONGER_THAN_QUIET_MS = 6_500;

test('a quick chain: two askers of one (app, hash) share one signing, and each gets one answer, confirmed, naming the signing', async () => {
  await withManager(new FakeChain(), async (c) => {
    const a = await c.ask(hashOf(1));
    const b = await c.ask(hashOf(1), { confirmations: 3 });
    const [ra, rb] = await Promise.all([a.answers, b.answers]);
    assert.equal(c.chain.signed.length, 1);
    const [tx] = c.chain.signed;
    assert.equal(confirmedOf(ra).tx.hash, tx!.hash);
    assert.equal(confirmedOf(rb).tx.hash, tx!.hash);
    assert.ok(confirmedOf(rb).confirmations >= 3);
    for (const [answers, asker] of [
      [ra, a],
      [rb, b],
    ] as const) {
      assert.deepEqual(
        answers.map((n) => n.state),
        ['confirmed'],
      );
      assert.equal(await noticesIn(asker.askerId), 1, "one signal in the asker's history");
      assert.deepEqual(confirmedOf(answers).sent, sentTxOf(tx!));
    }
    const { events } = await env.client.workflow.getHandle(c.managerId).fetchHistory();
    const sentSignals = (events ?? []).filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes).length;
    assert.equal(sentSignals, 2, 'the manager signalled each asker once');
  });
});

/** What an asker is told of a signing: its hash, nonce and fees. */
function sentTxOf(tx: { hash: string; nonce: number; maxFeePerGas: string; maxPriorityFeePerGas: string }) {
  return { hash: tx.hash, nonce: tx.nonce, maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas };
}

test('a slow chain: an asker is told sent with the transaction hash once nothing is mined for a while, then confirmed', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  chain.stallMs = 60_000;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    await c.until('in the pool', () => chain.pool.size === 1);
    // No block comes: nothing else happens in the manager, yet the held answer goes out.
    const deadline = Date.now() + 20_000;
    while ((await noticesIn(a.askerId)) === 0) {
      assert.ok(Date.now() < deadline, 'the sent answer never came');
      await new Promise((r) => setTimeout(r, 100));
    }
    chain.automine = true;
    const answers = await a.answers;
    const [tx] = chain.signed;
    assert.deepEqual(
      answers.map((n) => n.state),
      ['sent', 'confirmed'],
    );
    const sent = answers[0] as Extract<RegistrationNotice, { state: 'sent' }>;
    assert.deepEqual(sent.tx, sentTxOf(tx!));
    assert.equal(confirmedOf(answers).tx.hash, tx!.hash);
    assert.equal(confirmedOf(answers).sent, undefined, 'told already: not repeated');
    assert.equal(await noticesIn(a.askerId), 2);
  });
});

test('slow confirmations: an asker is told mined, with the signing it never heard of, then confirmed', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1), { confirmations: 3 });
    await c.until('in the pool', () => chain.pool.size === 1);
    chain.mine();
    await c.until('seen mined', (s) => s.pending.some((p) => p.state === 'mined'));
    await new Promise((r) => setTimeout(r, LONGER_THAN_QUIET_MS));
    chain.automine = true;
    const answers = await a.answers;
    assert.deepEqual(
      answers.map((n) => n.state),
      ['mined', 'confirmed'],
    );
    const mined = answers[0] as Extract<RegistrationNotice, { state: 'mined' }>;
    assert.equal(mined.tx.hash, chain.signed[0]!.hash);
    assert.equal(mined.sent?.hash, chain.signed[0]!.hash);
    assert.equal(mined.sent?.nonce, chain.signed[0]!.nonce);
  });
});

test('many registrations go out at consecutive nonces in one signing batch', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  await withManager(chain, async (c) => {
    const asks = await Promise.all([1, 2, 3, 4, 5].map((n) => c.ask(hashOf(n))));
    await c.until('all five in the pool', () => chain.pool.size === 5);
    assert.deepEqual([...chain.pool.keys()].sort(), [0, 1, 2, 3, 4]);
    chain.automine = true;
    const answers = await Promise.all(asks.map((a) => a.answers));
    answers.forEach(confirmedOf);
    assert.equal(chain.signed.length, 5);
  });
});

test('a dropped transaction is broadcast again as the same bytes', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  chain.forgetBroadcasts = 1;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    const s = await c.until('a rebroadcast', (st) => st.stats.rebroadcast >= 1);
    assert.equal(s.stats.signed, 1);
    chain.automine = true;
    confirmedOf(await a.answers);
    assert.equal(chain.signed.length, 1, 'never signed again');
    assert.ok(chain.broadcasts.filter((r) => r === chain.signed[0]!.raw).length >= 2);
  });
});

test('below the base fee: replaced at once with both fees at least 10% higher', async () => {
  const chain = new FakeChain();
  await withManager(chain, async (c) => {
    chain.baseFee = 10n;
    // The first signing bids 21; the base fee jumps past it before the broadcast.
    chain.afterNewSignings = () => void (chain.baseFee = 22n);
    const a = await c.ask(hashOf(1));
    confirmedOf(await a.answers);
    const [first, second] = chain.signed;
    assert.equal(chain.broadcasts[0], first?.raw, 'the first signing was broadcast and refused');
    assert.ok(first && second, JSON.stringify(chain.signed));
    assert.equal(second.nonce, first.nonce);
    assert.ok(BigInt(second.maxFeePerGas) >= min110(first.maxFeePerGas));
    assert.ok(BigInt(second.maxPriorityFeePerGas) >= min110(first.maxPriorityFeePerGas));
    assert.ok(BigInt(second.maxFeePerGas) >= chain.baseFee);
  });
});

test('a stuck transaction is replaced after the stall time, both fees +10%, and the replacement confirms', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  chain.stallMs = 500;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    await c.until('a replacement', (s) => s.stats.replaced >= 1);
    const [first, second] = chain.signed as [(typeof chain.signed)[0], (typeof chain.signed)[0]];
    assert.equal(second.nonce, first.nonce);
    for (const f of ['maxFeePerGas', 'maxPriorityFeePerGas'] as const) assert.ok(BigInt(second[f]) >= min110(first[f]), f);
    chain.automine = true;
    const done = confirmedOf(await a.answers);
    assert.ok(chain.signed.some((t) => t.hash === done.tx.hash));
  });
});

test('at the fee cap the manager stops bidding, waits and says so', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  chain.stallMs = 300;
  chain.maxFeePerGasWei = '22';
  await withManager(chain, async (c) => {
    await c.ask(hashOf(1));
    const s = await c.until('the cap note', (st) => st.pending.some((p) => /fee cap/.test(p.note ?? '')));
    assert.equal(chain.signed.length, 1, 'no replacement above the cap');
    assert.match(s.pending[0]!.note!, /22 wei/);
  });
});

test('a nonce taken by another transaction of the key: the registration moves to the next nonce', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    await c.until('in the pool', () => chain.pool.size === 1);
    chain.takeNextNonce();
    await c.until('a second signing', () => chain.signed.length === 2);
    assert.equal(chain.signed[1]!.nonce, chain.signed[0]!.nonce + 1);
    chain.automine = true;
    assert.equal(confirmedOf(await a.answers).tx.hash, chain.signed[1]!.hash);
  });
});

test('a gap below our nonce that nothing fills is filled with a 0-value self-send', async () => {
  const chain = new FakeChain();
  chain.strayPending = 1; // someone else's pending transaction holds nonce 0, then vanishes
  chain.stallMs = 300;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    confirmedOf(await a.answers);
    assert.equal(chain.signed[0]!.nonce, 1, 'stepped over the stray nonce');
    const fill = chain.signed.find((t) => t.kind === 'self');
    assert.ok(fill && fill.nonce === 0, JSON.stringify(chain.signed));
    assert.equal((await c.status()).stats.filled, 1);
  });
});

test('a reorg that removes the registration: the same bytes again, then confirmed in the new block', async () => {
  const chain = new FakeChain();
  chain.confirmations = 4;
  await withManager(chain, async (c) => {
    chain.automine = false;
    const a = await c.ask(hashOf(1), { confirmations: 4 });
    await c.until('in the pool', () => chain.pool.size === 1);
    chain.mine();
    await c.until('seen mined', (s) => s.pending.some((p) => p.state === 'mined'));
    const firstBlock = [...chain.receipts.values()][0]!.blockNumber;
    chain.reorg(chain.head - firstBlock + 1);
    await c.until('the reorg noticed', (s) => s.stats.reorgs >= 1);
    chain.automine = true;
    const done = confirmedOf(await a.answers);
    assert.equal(chain.signed.length, 1, 'the recorded bytes were sent again, not re-signed');
    assert.ok(done.tx.blockNumber > firstBlock);
  });
});

test('a withdrawn ask: the pending registration is cancelled by a self-send at the same nonce, nothing else is signed', async () => {
  const chain = new FakeChain();
  chain.automine = false;
  await withManager(chain, async (c) => {
    const a = await c.ask(hashOf(1));
    await c.until('in the pool', () => chain.pool.size === 1);
    await env.client.workflow.getHandle(c.managerId).signal(withdrawSignal, { requestId: a.askerId, appId: APP, composeHash: hashOf(1) });
    await c.until('the cancel', () => chain.signed.some((t) => t.kind === 'self'));
    chain.automine = true;
    const s = await c.until('settled', (st) => st.pending.length === 0 && st.registrations.length === 0);
    assert.deepEqual(
      chain.signed.map((t) => [t.kind, t.nonce]),
      [
        ['register', 0],
        ['self', 0],
      ],
    );
    assert.equal(chain.allowed.size, 0, 'the hash was never registered');
    assert.equal(s.stats.mined, 1);
  });
});

test('continue-as-new carries the books: a later ask for a done registration is answered without signing', async () => {
  const chain = new FakeChain();
  await withManager(
    chain,
    async (c) => {
      for (let n = 1; n <= 4; n++) confirmedOf(await (await c.ask(hashOf(n))).answers);
      const s = await c.until('a new run', (st) => st.continuedAsNew >= 1);
      assert.ok(s.historyLength < 400, `history stays short: ${s.historyLength}`);
      const again = confirmedOf(await (await c.ask(hashOf(2))).answers);
      assert.equal(chain.signed.length, 4, 'no second registration of a remembered hash');
      assert.equal(again.tx.hash, chain.signed[1]!.hash);
    },
    100,
  );
});

test('empty and wrong-shaped register/withdraw signals are ignored with the reason in the status; the manager keeps serving', async () => {
  const chain = new FakeChain();
  await withManager(chain, async (c) => {
    confirmedOf(await (await c.ask(hashOf(1))).answers);
    const handle = env.client.workflow.getHandle(c.managerId);
    const junk: [typeof registerSignal | typeof withdrawSignal, unknown, RegExp][] = [
      [registerSignal, undefined, /register signal ignored: expected \{"requestId".*got nothing/],
      [registerSignal, null, /register signal ignored: .*got null/],
      [registerSignal, 'register', /register signal ignored: .*got a string/],
      [registerSignal, {}, /register signal ignored: requestId is missing/],
      [
        registerSignal,
        { requestId: 'r', appId: APP, composeHash: hashOf(2), confirmations: '2', notifyWorkflowId: 'w' },
        /confirmations must be an integer from 1 to \d+, got a string/,
      ],
      [
        registerSignal,
        { requestId: 'r', appId: 42, composeHash: hashOf(2), confirmations: 2, notifyWorkflowId: 'w' },
        /appId must be 40 hex/,
      ],
      [
        registerSignal,
        { requestId: 'r', appId: APP, composeHash: hashOf(2), confirmations: 2, notifyWorkflowId: 'w', notAllowedAtBlock: 'x' },
        /notAllowedAtBlock must be a block number/,
      ],
      [withdrawSignal, undefined, /withdraw signal ignored: .*got nothing/],
      [withdrawSignal, [1, 2], /withdraw signal ignored: .*got a list of 2/],
      [withdrawSignal, { requestId: 'r', appId: APP, composeHash: 7 }, /composeHash must be 64 hex digits/],
    ];
    for (const [signal, arg, expected] of junk) {
      await (handle.signal as (s: unknown, ...a: unknown[]) => Promise<void>)(signal, ...(arg === undefined ? [] : [arg]));
      const s = await c.until(`the status to name ${expected}`, (st) => expected.test(st.lastError ?? ''), 10_000);
      assert.match(s.lastError!, expected);
    }
    const status = await c.status();
    assert.equal(status.registrations.filter((r) => r.state !== 'done').length, 0, 'nothing was booked from junk');

    // A real registration still goes through, after all of that.
    confirmedOf(await (await c.ask(hashOf(3))).answers);
    assert.equal(chain.signed.length, 2);

    const { events } = await handle.fetchHistory();
    const failedTasks = (events ?? []).filter((e) => e.workflowTaskFailedEventAttributes);
    assert.equal(failedTasks.length, 0, 'no workflow task failed');
  });
});
