// Regenerates contracts/artifacts from the Solidity sources; a test keeps them in step.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CONTRACT_ARTIFACTS, artifactPath, compileContract } from '../src/dev/compile-contracts.ts';

for (const { artifact: name, source, contract } of CONTRACT_ARTIFACTS) {
  const artifact = compileContract(source, contract);
  const path = artifactPath(name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(artifact, null, 2)}\n`);
  console.log(`wrote ${path} (${(artifact.bytecode.length - 2) / 2} bytes of bytecode, ${artifact.compiler})`);
}
