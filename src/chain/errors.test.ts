import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpRequestError, InternalRpcError, RpcRequestError, TransactionRejectedRpcError } from 'viem';
import { ChainError, nodeMessageOf, redactUrls, toChainError } from './errors.ts';

test('redactUrls keeps scheme, host and port and hides path, query and user info', () => {
  assert.equal(redactUrls('at http://127.0.0.1:8545 now'), 'at http://127.0.0.1:8545 now');
  assert.equal(redactUrls('at http://127.0.0.1:8545/ now'), 'at http://127.0.0.1:8545 now');
  assert.equal(redactUrls('URL: https://base-mainnet.g.alchemy.com/v2/KEY123'), 'URL: https://base-mainnet.g.alchemy.com/…');
  assert.equal(redactUrls('"https://rpc.example?apikey=KEY123"'), '"https://rpc.example/…"');
  assert.equal(redactUrls('wss://u:KEY123@rpc.example:443/x'), 'wss://rpc.example/…');
});

test('a ChainError redacts its own message and carries retryability by code', () => {
  const err = new ChainError('CONFIG', 'bad https://x.example/KEY123');
  assert.equal(err.message, 'bad https://x.example/…');
  assert.equal(err.retryable, false);
  assert.equal(new ChainError('RPC_ERROR', 'x').retryable, true);
});

test('toChainError keeps the node message on one line and classifies transport failures', () => {
  const rpcBody = { method: 'eth_sendRawTransaction', params: ['0x02'] };
  const rejected = new TransactionRejectedRpcError(
    new RpcRequestError({
      body: rpcBody,
      error: { code: -32003, message: 'insufficient funds for gas' },
      url: 'https://rpc.example/KEY123',
    }),
  );
  assert.equal(nodeMessageOf(rejected), 'insufficient funds for gas');
  const wrapped = toChainError(rejected, 'broadcasting');
  assert.equal(wrapped.code, 'RPC_ERROR');
  assert.match(wrapped.message, /^broadcasting: .*insufficient funds for gas/);
  assert.doesNotMatch(wrapped.message, /KEY123|\n/);

  const http = new HttpRequestError({ url: 'https://rpc.example/KEY123', status: 503, body: rpcBody, details: 'Service Unavailable' });
  assert.equal(toChainError(http, 'x').code, 'RPC_UNAVAILABLE');
  assert.doesNotMatch(toChainError(http, 'x').message, /KEY123/);
  const forbidden = new HttpRequestError({ url: 'https://rpc.example', status: 403, body: rpcBody });
  assert.equal(toChainError(forbidden, 'x').code, 'RPC_ERROR');
  assert.equal(toChainError(new InternalRpcError(new Error('boom')), 'x').code, 'RPC_ERROR');
  assert.equal(toChainError(new Error('fetch failed'), 'x').code, 'RPC_UNAVAILABLE');
  const same = new ChainError('INVALID_INPUT', 'kept');
  assert.equal(toChainError(same, 'x'), same);
});
