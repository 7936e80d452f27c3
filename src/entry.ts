// Module paths that work both from the TypeScript sources (run through tsx) and from the
// compiled dist/ (plain node, production dependencies only).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The path of a sibling module given by its name without extension: `.ts` while running
 * from src/, `.js` once compiled. The SDK loads these paths itself (workflow code, the
 * failure converter), so they cannot go through the TypeScript import rewriting.
 */
export function siblingModule(importMetaUrl: string, relativeWithoutExt: string): string {
  const ext = importMetaUrl.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`${relativeWithoutExt}${ext}`, importMetaUrl));
}

/** True when the module is the process's entry point, also when started through a bin symlink. */
export function isMainModule(importMetaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(importMetaUrl));
  } catch {
    return false;
  }
}
