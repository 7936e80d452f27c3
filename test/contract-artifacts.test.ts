import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFunctionSignature, toEventSignature, type AbiFunction, type AbiEvent } from 'viem';
import { CONTRACT_ARTIFACTS, compileContract, loadArtifact } from '../src/dev/compile-contracts.ts';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';

test('every committed artifact is what its Solidity source compiles to', () => {
  assert.ok(CONTRACT_ARTIFACTS.length >= 4);
  for (const { artifact, source, contract } of CONTRACT_ARTIFACTS) {
    const fresh = compileContract(source, contract);
    const committed = loadArtifact(artifact);
    assert.equal(committed.bytecode, fresh.bytecode, `${artifact}: run \`npm run compile:contracts\` and commit the artifact`);
    assert.deepEqual(committed.abi, fresh.abi, artifact);
  }
});

test('the hand-kept ABI used at run time matches the compiled contract', () => {
  // The stand-in and the dstack-compatible app each: the worker talks to either.
  for (const name of ['DstackApp', 'dstack/DstackApp']) {
    const compiled = loadArtifact(name).abi;
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
    for (const sig of signatures(dstackAppAbi)) assert.ok(compiledSigs.has(sig), `${sig} is not in ${name}`);
  }
});
