import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChainError } from './errors.ts';
import { chainFor, createChainClients, describeRpcUrl, parseChainRpcConfig, rpcUrlFor } from './clients.ts';

const configError = (re: RegExp) => (err: unknown) => err instanceof ChainError && err.code === 'CONFIG' && re.test(err.message);

test('CHAIN_RPC_URLS maps each chain id to its URL; query strings and extra = survive', () => {
  const config = parseChainRpcConfig({
    CHAIN_RPC_URLS: ' 31337=http://127.0.0.1:8545 ,8453=https://base.example/v2/abc?key=x=y\n1=https://eth.example',
  });
  assert.deepEqual(
    [...config.entries()],
    [
      [31337, 'http://127.0.0.1:8545'],
      [8453, 'https://base.example/v2/abc?key=x=y'],
      [1, 'https://eth.example'],
    ],
  );
  assert.equal(rpcUrlFor(config, 8453), 'https://base.example/v2/abc?key=x=y');
});

test('the single CHAIN_RPC_URL + CHAIN_ID form, alone or merged with the list', () => {
  assert.deepEqual(
    [...parseChainRpcConfig({ CHAIN_RPC_URL: 'http://localhost:8545', CHAIN_ID: '31337' })],
    [[31337, 'http://localhost:8545']],
  );
  const merged = parseChainRpcConfig({ CHAIN_RPC_URLS: '1=https://a.example', CHAIN_RPC_URL: 'https://b.example', CHAIN_ID: '8453' });
  assert.deepEqual([...merged.keys()].sort(), [1, 8453]);
  // The same pair twice is harmless.
  assert.equal(parseChainRpcConfig({ CHAIN_RPC_URLS: '1=https://a.example', CHAIN_RPC_URL: 'https://a.example', CHAIN_ID: '1' }).size, 1);
  assert.equal(parseChainRpcConfig({}).size, 0);
});

test('configuration errors name the variable and entry but never echo the URL', () => {
  const secret = 'https://base.example/v2/SECRETKEY';
  const cases: [Record<string, string>, RegExp][] = [
    [{ CHAIN_RPC_URLS: `8453` }, /CHAIN_RPC_URLS entry 1 must look like <chainId>=<url>/],
    [{ CHAIN_RPC_URLS: `1=https://a.example,abc=${secret}` }, /CHAIN_RPC_URLS entry 2: chain id must be a number/],
    [{ CHAIN_RPC_URLS: `-5=${secret}` }, /positive integer/],
    [{ CHAIN_RPC_URLS: `1.5=${secret}` }, /positive integer/],
    [{ CHAIN_RPC_URLS: `8453=ftp://x/SECRETKEY` }, /http:\/\/ or https:\/\/ URL for chain 8453/],
    [{ CHAIN_RPC_URLS: `8453=not a url SECRETKEY` }, /entry 1/],
    [{ CHAIN_RPC_URLS: `8453=${secret},8453=https://other.example` }, /chain 8453 is configured twice/],
    [{ CHAIN_RPC_URL: secret }, /CHAIN_ID is not/],
    [{ CHAIN_ID: '8453' }, /CHAIN_RPC_URL is not/],
    [{ CHAIN_RPC_URL: secret, CHAIN_ID: 'base' }, /CHAIN_RPC_URL\/CHAIN_ID: chain id must be a number/],
  ];
  for (const [env, re] of cases) {
    assert.throws(
      () => parseChainRpcConfig(env),
      (err: unknown) => {
        assert.ok(configError(re)(err), `${JSON.stringify(env)} → ${(err as Error).message}`);
        assert.doesNotMatch((err as Error).message, /SECRETKEY/);
        return true;
      },
    );
  }
});

test('rpcUrlFor names the missing chain and the configured ones', () => {
  const config = parseChainRpcConfig({ CHAIN_RPC_URLS: '8453=https://b.example,1=https://a.example' });
  assert.throws(() => rpcUrlFor(config, 31337), configError(/no RPC URL configured for chain 31337 \(configured: 1, 8453\)/));
});

test('chainFor keeps known chains and invents a plain one for any other id', () => {
  const baseChain = chainFor(8453, 'https://rpc.example');
  assert.equal(baseChain.id, 8453);
  assert.equal(baseChain.name, 'Base');
  assert.deepEqual(baseChain.rpcUrls.default.http, ['https://rpc.example']);
  const other = chainFor(424242, 'https://rpc.example');
  assert.equal(other.id, 424242);
  assert.equal(other.nativeCurrency.decimals, 18);
});

test('createChainClients validates its input and binds the chain', () => {
  const { publicClient, chain } = createChainClients({ rpcUrl: 'http://127.0.0.1:1', chainId: 31337 });
  assert.equal(chain.id, 31337);
  assert.equal(publicClient.chain?.id, 31337);
  assert.throws(() => createChainClients({ rpcUrl: 'nope', chainId: 1 }), configError(/createChainClients/));
  assert.throws(() => createChainClients({ rpcUrl: 'http://x', chainId: 0 }), configError(/positive integer/));
});

test('an unreachable RPC surfaces as a retryable RPC_UNAVAILABLE error with the URL redacted', async () => {
  const { withChainErrors } = await import('./errors.ts');
  const { publicClient } = createChainClients({ rpcUrl: 'http://127.0.0.1:9/v2/SECRETKEY', chainId: 1, retryCount: 0, timeoutMs: 2000 });
  await assert.rejects(
    withChainErrors('reading the block number', () => publicClient.getBlockNumber()),
    (err: unknown) => {
      assert.ok(err instanceof ChainError);
      assert.equal(err.code, 'RPC_UNAVAILABLE');
      assert.equal(err.retryable, true);
      assert.match(err.message, /^reading the block number: /);
      assert.doesNotMatch(err.message, /SECRETKEY/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    },
  );
  assert.equal(describeRpcUrl('https://user:pw@base.example/v2/SECRETKEY'), 'https://base.example/…');
});
