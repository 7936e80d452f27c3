import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFunctionSignature, toEventSignature, type AbiFunction, type AbiEvent } from 'viem';
import { compileContract, loadArtifact } from '../src/dev/compile-contracts.ts';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';

test('the committed DstackApp artifact is what the Solidity source compiles to', () => {
  const fresh = compileContract('DstackApp.sol', 'DstackApp');
  const committed = loadArtifact('DstackApp');
  assert.equal(committed.bytecode, fresh.bytecode, 'run `npm run compile:contracts` and commit the artifact');
  assert.deepEqual(committed.abi, fresh.abi);
});

test('the hand-kept ABI used at run time matches the compiled contract', () => {
  const compiled = loadArtifact('DstackApp').abi;
  const signatures = (abi: readonly unknown[]) =>
    new Set(
      (abi as (AbiFunction | AbiEvent | { type: string })[]).flatMap((item) =>
        item.type === 'function'
          ? [`${toFunctionSignature(item as AbiFunction)}:${(item as AbiFunction).stateMutability}`]
          : item.type === 'event'
            ? [toEventSignature(item as AbiEvent)]
            : [],
      ),
    );
  const compiledSigs = signatures(compiled);
  for (const sig of signatures(dstackAppAbi)) assert.ok(compiledSigs.has(sig), `${sig} is not in the compiled contract`);
});
