import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createPublicClient,
  custom,
  encodeFunctionData,
  hexToBigInt,
  keccak256,
  toHex,
  type Address,
  type Hex,
  type TransactionReceipt,
} from 'viem';
import { getBlockNumber } from 'viem/actions';
import { startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { chainFor } from './clients.ts';
import { ChainError } from './errors.ts';
import { classifyLogsError, findRegistration } from './find-registration.ts';
import { createChainClients } from './clients.ts';
import { dstackAppAbi } from './dstack-app-abi.ts';

let chain: ChainFixture;
let app: Address;
let otherApp: Address;
let deployedAt: number;
const target = keccak256(toHex('the registered compose'));
let registration: TransactionReceipt;

before(async () => {
  chain = await startChainFixture({ name: 'find' });
  app = await chain.deployApp(chain.accounts.owner.address);
  otherApp = await chain.deployApp(chain.accounts.owner.address);
  deployedAt = Number(await getBlockNumber(chain.client));
  for (let i = 0; i < 6; i++) await chain.addComposeHash(app, keccak256(toHex(`noise-before-${i}`)));
  // The same hash on another app is noise too: only the app's own event counts.
  await chain.addComposeHash(otherApp, target);
  registration = await chain.addComposeHash(app, target);
  for (let i = 0; i < 6; i++) await chain.addComposeHash(app, keccak256(toHex(`noise-after-${i}`)));
  await chain.addComposeHash(otherApp, target);
  await chain.mine(10);
});
after(async () => {
  await chain?.stop();
});

test('finds the registration among noise, scanning backwards in small chunks', async () => {
  const progress: { scannedFrom: number; remaining: number }[] = [];
  const found = await findRegistration(chain.client, {
    app,
    composeHash: target.slice(2),
    fromBlock: deployedAt,
    chunkSize: 3,
    onProgress: (p) => progress.push(p),
  });
  assert.deepEqual(found, {
    found: true,
    txHash: registration.transactionHash,
    blockNumber: Number(registration.blockNumber),
    blockHash: registration.blockHash,
    logIndex: registration.logs[0]!.logIndex,
  });
  assert.ok(progress.length >= 5, 'scanned newest chunks first, several of them');
  assert.ok(progress.every((p, i) => i === 0 || p.scannedFrom < progress[i - 1]!.scannedFrom));
  // One big chunk finds the same.
  assert.deepEqual(await findRegistration(chain.client, { app, composeHash: target, fromBlock: 0 }), found);
});

test('stops at fromBlock and at toBlock: outside the window it is not found', async () => {
  const block = Number(registration.blockNumber);
  assert.deepEqual(await findRegistration(chain.client, { app, composeHash: target, fromBlock: block + 1, chunkSize: 4 }), {
    found: false,
    reason: 'not-found',
    scannedFrom: block + 1,
    scannedTo: Number(await getBlockNumber(chain.client)),
  });
  assert.deepEqual(await findRegistration(chain.client, { app, composeHash: target, fromBlock: deployedAt, toBlock: block - 1 }), {
    found: false,
    reason: 'not-found',
    scannedFrom: deployedAt,
    scannedTo: block - 1,
  });
  const exact = await findRegistration(chain.client, { app, composeHash: target, fromBlock: block, toBlock: block, chunkSize: 1 });
  assert.equal(exact.found && exact.txHash, registration.transactionHash);
});

test('a hash added twice resolves to the newest addition; one removed since is reported as removed', async () => {
  const twice = keccak256(toHex('added twice'));
  await chain.addComposeHash(app, twice);
  const second = await chain.addComposeHash(app, twice);
  const found = await findRegistration(chain.client, { app, composeHash: twice, fromBlock: deployedAt, chunkSize: 2 });
  assert.equal(found.found && found.txHash, second.transactionHash);

  const gone = keccak256(toHex('removed later'));
  await chain.addComposeHash(app, gone);
  const removal = await chain.receipt(
    await chain.send(chain.accounts.owner, {
      to: app,
      data: encodeFunctionData({ abi: dstackAppAbi, functionName: 'removeComposeHash', args: [gone] }),
    }),
  );
  const result = await findRegistration(chain.client, { app, composeHash: gone, fromBlock: deployedAt });
  assert.equal(result.found, false);
  assert.ok(!result.found && result.reason === 'removed');
  assert.equal(result.removedAt.txHash, removal.transactionHash);
});

test('an RPC that refuses wide ranges gets smaller ones and the scan still succeeds', async () => {
  const widths: number[] = [];
  const picky = createPublicClient({
    chain: chainFor(chain.chainId, chain.anvil.rpcUrl),
    transport: custom({
      request: async ({ method, params }: { method: string; params: [{ fromBlock: Hex; toBlock: Hex }] }) => {
        if (method === 'eth_getLogs') {
          const width = Number(hexToBigInt(params[0].toBlock) - hexToBigInt(params[0].fromBlock)) + 1;
          widths.push(width);
          if (width > 5) throw Object.assign(new Error('query exceeds max block range 5'), { code: -32602 });
        }
        return chain.rpc(method, params);
      },
    }),
  });
  const found = await findRegistration(picky, { app, composeHash: target, fromBlock: 0, chunkSize: 40 });
  assert.equal(found.found && found.txHash, registration.transactionHash);
  assert.ok(widths[0]! > 5 && widths.slice(1).some((w) => w <= 5) && widths.at(-1)! <= 5, `widths: ${widths.join(',')}`);
});

test('bad parameters are INVALID_INPUT, and an aborted scan rejects', async () => {
  for (const bad of [
    { app, composeHash: 'xyz', fromBlock: 0 },
    { app: '0x12' as Address, composeHash: target, fromBlock: 0 },
    { app, composeHash: target, fromBlock: 10, toBlock: 5 },
    { app, composeHash: target, fromBlock: 0, chunkSize: 0 },
  ]) {
    await assert.rejects(findRegistration(chain.client, bad), (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT');
  }
  const controller = new AbortController();
  controller.abort(new Error('cancelled'));
  await assert.rejects(findRegistration(chain.client, { app, composeHash: target, fromBlock: 0, signal: controller.signal }), /cancelled/);
});

/** An HTTP JSON-RPC proxy in front of anvil that answers `refuse(n)` instead for the n-th eth_getLogs. */
async function logsProxy(refuse: (n: number, width: number) => { status: number; body: unknown } | undefined) {
  const widths: number[] = [];
  const server = createServer(async (req, res) => {
    let text = '';
    for await (const part of req) text += String(part);
    const call = JSON.parse(text) as { id: number; method: string; params: [{ fromBlock: Hex; toBlock: Hex }] };
    if (call.method === 'eth_getLogs') {
      const width = Number(hexToBigInt(call.params[0].toBlock) - hexToBigInt(call.params[0].fromBlock)) + 1;
      widths.push(width);
      const refusal = refuse(widths.length, width);
      if (refusal) {
        res.writeHead(refusal.status, { 'content-type': 'application/json' }).end(JSON.stringify(refusal.body));
        return;
      }
    }
    const result = await chain.rpc(call.method, call.params);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { publicClient } = createChainClients({ rpcUrl: url, chainId: chain.chainId, pollingIntervalMs: 50, retryCount: 0 });
  return { client: publicClient, widths, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('a rate-limited RPC (HTTP 429) is waited out with the same range, not shrunk to 1-block chunks', async () => {
  const proxy = await logsProxy((n) => (n <= 4 ? { status: 429, body: { error: 'Too Many Requests' } } : undefined));
  try {
    const pauses: number[] = [];
    const found = await findRegistration(proxy.client, {
      app,
      composeHash: target,
      fromBlock: 0,
      chunkSize: 40,
      busyPauseMs: 10,
      onBackoff: (b) => pauses.push(b.pauseMs),
    });
    assert.equal(found.found && found.txHash, registration.transactionHash);
    assert.deepEqual(pauses, [10, 20, 40, 80], 'backed off, doubling');
    assert.ok(
      proxy.widths.every((w, i) => i === 0 || w === 40 || w === proxy.widths[0]),
      `widths: ${proxy.widths.join(',')}`,
    );
    assert.equal(Math.min(...proxy.widths.slice(0, 5)), proxy.widths[0], 'the refused range is asked again as it was');
  } finally {
    await proxy.close();
  }
});

test('a JSON-RPC rate limit (-32005 "rate limit exceeded") backs off; a range cap (-32005 "block range") shrinks', async () => {
  const busy = await logsProxy((n) =>
    n <= 2 ? { status: 200, body: { jsonrpc: '2.0', id: 1, error: { code: -32005, message: 'rate limit exceeded' } } } : undefined,
  );
  try {
    const found = await findRegistration(busy.client, { app, composeHash: target, fromBlock: 0, chunkSize: 40, busyPauseMs: 5 });
    assert.equal(found.found && found.txHash, registration.transactionHash);
    assert.equal(busy.widths[0], busy.widths[1]);
    assert.equal(busy.widths[1], busy.widths[2]);
  } finally {
    await busy.close();
  }
  const capped = await logsProxy((_n, width) =>
    width > 5
      ? { status: 200, body: { jsonrpc: '2.0', id: 1, error: { code: -32005, message: 'query exceeds max block range 5' } } }
      : undefined,
  );
  try {
    const found = await findRegistration(capped.client, { app, composeHash: target, fromBlock: 0, chunkSize: 40 });
    assert.equal(found.found && found.txHash, registration.transactionHash);
    assert.ok(capped.widths.at(-1)! <= 5 && capped.widths[1]! < capped.widths[0]!, `widths: ${capped.widths.join(',')}`);
  } finally {
    await capped.close();
  }
});

test('a node that stays rate-limited ends the scan with a retryable RPC_UNAVAILABLE after a bounded wait', async () => {
  const proxy = await logsProxy(() => ({ status: 429, body: { error: 'Too Many Requests' } }));
  try {
    const t0 = Date.now();
    await assert.rejects(
      findRegistration(proxy.client, { app, composeHash: target, fromBlock: 0, chunkSize: 40, busyPauseMs: 5 }),
      (e: unknown) => e instanceof ChainError && e.code === 'RPC_UNAVAILABLE' && e.retryable,
    );
    assert.equal(proxy.widths.length, 7, 'one call and six retries of the same range');
    assert.ok(new Set(proxy.widths).size === 1);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await proxy.close();
  }
});

test('classifyLogsError tells busy, down and range apart', () => {
  assert.equal(classifyLogsError(new Error('Too many requests, slow down')), 'busy');
  assert.equal(classifyLogsError(new Error('query returned more than 10000 results')), 'range');
});
