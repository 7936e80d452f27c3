// The compose-go checker in tools/compose-check, built once into .cache/ and rebuilt only when
// its sources are newer than the binary. `go build` fetches the pinned modules itself (go.sum).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const sourceDir = join(root, 'tools', 'compose-check');
const binary = join(root, '.cache', 'compose-check', 'compose-check');

function newestSource(): number {
  return Math.max(
    ...readdirSync(sourceDir)
      .filter((f) => /\.go$|^go\.(mod|sum)$/.test(f))
      .map((f) => statSync(join(sourceDir, f)).mtimeMs),
  );
}

let built: Promise<string> | undefined;

/** The path of an up-to-date checker binary; a build failure (or no `go`) throws with Go's output. */
export function composeChecker(): Promise<string> {
  built ??= (async () => {
    if (existsSync(binary) && statSync(binary).mtimeMs > newestSource()) return binary;
    mkdirSync(join(root, '.cache', 'compose-check'), { recursive: true });
    // Built under a temporary name: a half-written binary is never taken for a fresh one.
    const partial = `${binary}.${process.pid}.tmp`;
    try {
      await run('go', ['build', '-buildvcs=false', '-o', partial, '.'], { cwd: sourceDir, timeout: 600_000 });
    } catch (err) {
      const e = err as { code?: string; stderr?: string; message: string };
      const why = e.code === 'ENOENT' ? 'the `go` command is not installed (see .ci/run)' : (e.stderr || e.message).trim();
      throw new Error(`building tools/compose-check failed: ${why}`);
    }
    renameSync(partial, binary);
    return binary;
  })();
  return built;
}
