import { DefaultLogger, Runtime } from '@temporalio/worker';

// Worker logs at INFO drown the test report; warnings and errors still show. A module of its
// own so that tests without the stack do not load it (and viem) to get this.
let runtimeInstalled = false;
export function quietTemporalRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed by another module in this process: keep that one.
  }
}
