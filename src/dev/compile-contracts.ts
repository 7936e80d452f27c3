import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Abi, Hex } from 'viem';

const require = createRequire(import.meta.url);

export const CONTRACTS_DIR = fileURLToPath(new URL('../../contracts/', import.meta.url));
export const ARTIFACTS_DIR = `${CONTRACTS_DIR}artifacts/`;

export interface ContractArtifact {
  contractName: string;
  sourceFile: string;
  compiler: string;
  abi: Abi;
  bytecode: Hex;
}

/** Settings are pinned so that a recompile is byte-identical to the committed artifact. */
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'paris',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  metadata: { bytecodeHash: 'none' },
} as const;

/** Every committed artifact: name (its path under artifacts/), Solidity source, contract. */
export const CONTRACT_ARTIFACTS: readonly { artifact: string; source: string; contract: string }[] = [
  // The constructor-deployed stand-in: tests that need an app in one transaction.
  { artifact: 'DstackApp', source: 'DstackApp.sol', contract: 'DstackApp' },
  // dstack-compatible contracts the local stack deploys its apps through.
  { artifact: 'dstack/DstackApp', source: 'dstack/DstackApp.sol', contract: 'DstackApp' },
  { artifact: 'dstack/DstackKms', source: 'dstack/DstackKms.sol', contract: 'DstackKms' },
  { artifact: 'dstack/ERC1967Proxy', source: 'dstack/Proxy.sol', contract: 'ERC1967Proxy' },
];

// Sources import OpenZeppelin by package name and each other by relative path.
function readImport(path: string): { contents: string } | { error: string } {
  try {
    if (path.startsWith('@openzeppelin/')) return { contents: readFileSync(require.resolve(path), 'utf8') };
    return { contents: readFileSync(`${CONTRACTS_DIR}${path}`, 'utf8') };
  } catch {
    return { error: `cannot read ${path}` };
  }
}

export function compileContract(sourceFile: string, contractName: string): ContractArtifact {
  const solc = require('solc') as { compile(input: string, callbacks?: { import(path: string): unknown }): string; version(): string };
  const source = readFileSync(`${CONTRACTS_DIR}${sourceFile}`, 'utf8');
  const input = { language: 'Solidity', sources: { [sourceFile]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: readImport })) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`solc failed on ${sourceFile}:\n${errors.map((e) => e.formattedMessage).join('\n')}`);
  }
  // An imported library contract (the proxy) sits under its own source path.
  const compiled =
    output.contracts?.[sourceFile]?.[contractName] ??
    Object.values(output.contracts ?? {}).find((byName) => byName[contractName])?.[contractName];
  if (!compiled) throw new Error(`solc produced no contract ${contractName} from ${sourceFile}`);
  return {
    contractName,
    sourceFile,
    compiler: `solc-js ${solc.version()}`,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
  };
}

export function artifactPath(contractName: string): string {
  return `${ARTIFACTS_DIR}${contractName}.json`;
}

export function loadArtifact(contractName: string): ContractArtifact {
  return JSON.parse(readFileSync(artifactPath(contractName), 'utf8')) as ContractArtifact;
}
