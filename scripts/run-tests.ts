// The README's test command: one local stack for the whole suite, then node's test runner.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack } from '../src/dev/stack.ts';
import { defaultServices } from '../src/dev/services.ts';
import { SHARED_STACK_ENV } from '../test/support/stack.ts';
import { installTestServer, TestServerInstallError } from './install-test-server.ts';

// Node 20's runner takes no globs: find the test files ourselves.
function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : testFiles(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : [...testFiles('src'), ...testFiles('test')].sort();

// The time-skipping test server (a no-op once installed). Without it the tests that need it fail
// saying why; the others still run.
try {
  await installTestServer((line) => process.stderr.write(`[test-server] ${line}\n`));
} catch (err) {
  if (!(err instanceof TestServerInstallError)) throw err;
  process.stderr.write(`[test-server] not installed, the time-skipping tests will fail: ${err.message}\n`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'dce-suite-'));
const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);
const stack = await startStack({ dataDir, services: defaultServices(), log });
log(`suite stack ready in ${stack.info.startedInMs} ms (${dataDir})`);

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, [SHARED_STACK_ENV]: dataDir },
});
const forward = (signal: NodeJS.Signals) => child.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await stack.stop();
rmSync(dataDir, { recursive: true, force: true });
// Nothing printed after the runner's summary: its pass/fail lines stay the closing lines.
process.exit(code);
