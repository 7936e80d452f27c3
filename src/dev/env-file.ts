import { existsSync, readFileSync } from 'node:fs';
import { parseEnvVars } from '../phala/dotenv.ts';

/** A dotenv file as a map; a missing file is an empty one. */
export function readEnvFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  return Object.fromEntries(parseEnvVars(readFileSync(path, 'utf8')).map(({ key, value }) => [key, value]));
}

/**
 * Single-quotes every value that is not plainly safe, so the file reads the same through
 * our dotenv parser and through `set -a; . file` in a shell (JSON braces would otherwise
 * be brace-expanded by bash).
 */
export function formatEnvFile(vars: Record<string, string>, header: string): string {
  const quote = (v: string) => (/^[A-Za-z0-9_./:@+=,-]*$/.test(v) ? v : `'${v}'`);
  for (const [key, value] of Object.entries(vars)) {
    if (value.includes("'") || value.includes('\n')) throw new Error(`${key}: a stack variable cannot hold a quote or a newline`);
  }
  return `# ${header}\n${Object.entries(vars)
    .map(([k, v]) => `${k}=${quote(v)}`)
    .join('\n')}\n`;
}
