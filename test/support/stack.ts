import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mnemonicToAccount } from 'viem/accounts';
import { toHex, type Hex } from 'viem';
import { ANVIL_MNEMONIC } from '../../src/dev/anvil.ts';
import { readEnvFile } from '../../src/dev/env-file.ts';
import { startStack, type StackInfo, type StackOptions } from '../../src/dev/stack.ts';
import { defaultServices } from '../../src/dev/services.ts';
import { quietTemporalRuntime } from './runtime.ts';

export interface TestStack {
  info: StackInfo;
  env: Record<string, string>;
  devKeys: { signer: Hex; other: Hex };
  /** Stops the stack when this process started it; a no-op for the suite's shared stack. */
  release(): Promise<void>;
}

/** Set by scripts/run-tests.ts: the data dir of the one stack the whole suite shares. */
export const SHARED_STACK_ENV = 'DCE_TEST_STACK_DIR';

function devKey(index: number): Hex {
  const key = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index }).getHdKey().privateKey;
  if (!key) throw new Error('could not derive a dev key');
  return toHex(key);
}

/**
 * The suite's shared stack when the runner started one, otherwise a private stack on
 * random ports in a temp dir, so a single test file still runs on its own.
 */
export async function useStack(options: Omit<StackOptions, 'dataDir'> & { private?: boolean } = {}): Promise<TestStack> {
  quietTemporalRuntime();
  // Tests that reorganise or stall the chain take a stack of their own.
  const shared = options.private ? undefined : process.env[SHARED_STACK_ENV];
  const devKeys = { signer: devKey(0), other: devKey(1) };
  if (shared && existsSync(join(shared, 'stack.json'))) {
    return {
      info: JSON.parse(readFileSync(join(shared, 'stack.json'), 'utf8')) as StackInfo,
      env: readEnvFile(join(shared, 'stack.env')),
      devKeys,
      release: async () => {},
    };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'dce-test-stack-'));
  const stack = await startStack({ services: defaultServices(), ...options, dataDir });
  return {
    info: stack.info,
    env: stack.env,
    devKeys,
    release: async () => {
      await stack.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
