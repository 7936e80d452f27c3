// Regenerates contracts/artifacts from the Solidity sources; a test keeps them in step.
import { mkdirSync, writeFileSync } from 'node:fs';
import { ARTIFACTS_DIR, artifactPath, compileContract } from '../src/dev/compile-contracts.ts';

mkdirSync(ARTIFACTS_DIR, { recursive: true });
const artifact = compileContract('DstackApp.sol', 'DstackApp');
writeFileSync(artifactPath(artifact.contractName), `${JSON.stringify(artifact, null, 2)}\n`);
console.log(`wrote ${artifactPath(artifact.contractName)} (${(artifact.bytecode.length - 2) / 2} bytes of bytecode, ${artifact.compiler})`);
