import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bumpFees } from './bump-fees.ts';
import { ChainError } from './errors.ts';

test('both fields rise by at least 10%, rounded up', () => {
  assert.deepEqual(bumpFees({ maxFeePerGas: '1000', maxPriorityFeePerGas: '100' }), { maxFeePerGas: '1100', maxPriorityFeePerGas: '110' });
  // 101 * 1.1 = 111.1: rounding down would be one wei short of geth's threshold.
  assert.deepEqual(bumpFees({ maxFeePerGas: '1001', maxPriorityFeePerGas: '101' }), { maxFeePerGas: '1102', maxPriorityFeePerGas: '112' });
  assert.deepEqual(bumpFees({ maxFeePerGas: 1n, maxPriorityFeePerGas: 0n }), { maxFeePerGas: '2', maxPriorityFeePerGas: '0' });
  assert.deepEqual(bumpFees({ maxFeePerGas: '1000', maxPriorityFeePerGas: '100' }, { bumpPercent: 12.5 }), {
    maxFeePerGas: '1125',
    maxPriorityFeePerGas: '113',
  });
});

test('the network suggestion is a floor for each field', () => {
  const bumped = bumpFees(
    { maxFeePerGas: '1000', maxPriorityFeePerGas: '100' },
    { suggested: { maxFeePerGas: '5000', maxPriorityFeePerGas: '50' } },
  );
  assert.deepEqual(bumped, { maxFeePerGas: '5000', maxPriorityFeePerGas: '110' });
  const tipOnly = bumpFees(
    { maxFeePerGas: '1000', maxPriorityFeePerGas: '100' },
    { suggested: { maxFeePerGas: '900', maxPriorityFeePerGas: '700' } },
  );
  assert.deepEqual(tipOnly, { maxFeePerGas: '1100', maxPriorityFeePerGas: '700' });
});

test('a property check over many values: ≥ 110% of the previous, ≥ suggestion, tip ≤ fee', () => {
  let seed = 42n;
  const next = () => (seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n);
  for (let i = 0; i < 2000; i++) {
    const fee = next() % 10n ** 12n;
    const tip = fee === 0n ? 0n : next() % (fee + 1n);
    const sFee = next() % 10n ** 12n;
    const sTip = sFee === 0n ? 0n : next() % (sFee + 1n);
    const out = bumpFees(
      { maxFeePerGas: fee, maxPriorityFeePerGas: tip },
      { suggested: { maxFeePerGas: sFee, maxPriorityFeePerGas: sTip } },
    );
    const f = BigInt(out.maxFeePerGas);
    const t = BigInt(out.maxPriorityFeePerGas);
    assert.ok(f * 100n >= fee * 110n && t * 100n >= tip * 110n);
    assert.ok(f >= sFee && t >= sTip && t <= f);
  }
});

test('below 10% or above the cap is refused', () => {
  assert.throws(
    () => bumpFees({ maxFeePerGas: '1', maxPriorityFeePerGas: '1' }, { bumpPercent: 5 }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  assert.throws(
    () => bumpFees({ maxFeePerGas: '1000', maxPriorityFeePerGas: '1' }, { maxFeePerGasCap: '1099' }),
    (e: unknown) =>
      e instanceof ChainError &&
      e.code === 'FEE_CAP_EXCEEDED' &&
      !e.retryable &&
      /needs maxFeePerGas 1100 wei, above the configured cap of 1099 wei/.test(e.message),
  );
  assert.deepEqual(bumpFees({ maxFeePerGas: '1000', maxPriorityFeePerGas: '1' }, { maxFeePerGasCap: '1100' }).maxFeePerGas, '1100');
});
