import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadChainConfig } from './config.ts';

const base = { CHAIN_RPC_URLS: '1=http://127.0.0.1:1,8453=http://127.0.0.1:2' };

test('CHAIN_MAX_FEE_GWEI sets a per-chain cap in wei, exactly', () => {
  const chains = loadChainConfig({ ...base, CHAIN_MAX_FEE_GWEI: '1=50,8453=0.25' });
  assert.equal(chains.get(1)!.maxFeePerGasWei, '50000000000');
  assert.equal(chains.get(8453)!.maxFeePerGasWei, '250000000');
  assert.equal(loadChainConfig(base).get(1)!.maxFeePerGasWei, undefined, 'no cap unless set');
});

test('a bad CHAIN_MAX_FEE_GWEI is refused with the variable and chain named', () => {
  for (const bad of ['1=abc', '1=-5', '1=0', '1=1.0000000001', 'x=5']) {
    assert.throws(() => loadChainConfig({ ...base, CHAIN_MAX_FEE_GWEI: bad }), (e: unknown) => e instanceof ConfigError && /CHAIN_MAX_FEE_GWEI/.test(e.message), bad);
  }
  assert.throws(() => loadChainConfig({ ...base, CHAIN_MAX_FEE_GWEI: '10=5' }), /chain 10, which has no RPC/);
});
