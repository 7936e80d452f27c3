import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

interface LockContent {
  pid: number;
  children: { name: string; pid: number; binary: string }[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/**
 * One stack per data dir. The lock records the stack's own pid and its children's, so a
 * later start can refuse while the owner lives, and reap the children a crashed owner left.
 */
export class StackLock {
  private content: LockContent = { pid: process.pid, children: [] };

  constructor(private readonly path: string) {}

  /** Returns the pids of stale children it killed. Throws when a live stack holds the lock. */
  acquire(): number[] {
    const reaped: number[] = [];
    if (existsSync(this.path)) {
      let previous: LockContent | undefined;
      try {
        previous = JSON.parse(readFileSync(this.path, 'utf8')) as LockContent;
      } catch {
        previous = undefined;
      }
      if (previous && previous.pid !== process.pid && alive(previous.pid)) {
        throw new Error(
          `a stack is already running on this data dir (pid ${previous.pid}, lock ${this.path}); ` +
            `stop it with Ctrl-C or \`kill -INT ${previous.pid}\`, or use another --data-dir`,
        );
      }
      for (const child of previous?.children ?? []) {
        // The pid may have been reused since the crash: only kill what still runs our binary.
        if (alive(child.pid) && commandLine(child.pid).includes(child.binary)) {
          process.kill(child.pid, 'SIGKILL');
          reaped.push(child.pid);
        }
      }
    }
    this.write();
    return reaped;
  }

  addChild(name: string, pid: number, binary: string): void {
    this.content.children.push({ name, pid, binary });
    this.write();
  }

  release(): void {
    rmSync(this.path, { force: true });
  }

  private write(): void {
    writeFileSync(this.path, JSON.stringify(this.content));
  }
}
