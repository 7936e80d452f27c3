/**
 * The limits the dstack guest enforces on decrypted env vars, checked before anything is
 * encrypted: the guest's rejection only shows up after the CVM restarts, far from the caller.
 *
 * Sizes are UTF-8 bytes. The total is the sum over items of key bytes + value bytes; the JSON
 * framing around them is not counted (the guest's exact accounting is not public, and this is
 * the measure users can reason about from their own data).
 *
 * Workflow-safe (no Node APIs): the update workflow runs these checks on its own input.
 *
 * Messages name keys (keys are not secret: they travel in clear as `env_keys`) but never values.
 * A key that fails the name rule may be a pasted `NAME=secret` line, so only its leading run of
 * name characters is shown, cut short.
 */
import type { EnvVar } from './dotenv.ts';

export const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_KEY_BYTES = 255;
export const MAX_ENV_VALUE_BYTES = 128 * 1024;
export const MAX_ENV_ITEMS = 1024;
export const MAX_ENV_TOTAL_BYTES = 1024 * 1024;

const SHOWN_KEY_CHARS = 32;

export type EnvValidationIssueCode =
  | 'not_an_array'
  | 'invalid_item'
  | 'invalid_key'
  | 'key_too_long'
  | 'value_too_long'
  | 'duplicate_key'
  | 'too_many_items'
  | 'total_too_large';

export interface EnvValidationIssue {
  code: EnvValidationIssueCode;
  /** Position in the input array; absent for issues about the whole list. */
  index?: number;
  /** The key, when it is a valid name and so safe to show. */
  key?: string;
  message: string;
}

export class EnvValidationError extends Error {
  override readonly name = 'EnvValidationError';
  readonly issues: readonly EnvValidationIssue[];

  constructor(issues: readonly EnvValidationIssue[]) {
    const n = issues.length;
    super(`invalid env vars (${n} problem${n === 1 ? '' : 's'}):\n${issues.map((i) => `- ${i.message}`).join('\n')}`);
    this.issues = issues;
  }
}

/**
 * UTF-8 length without Buffer, so the input schema can run these checks inside workflow code.
 * A lone surrogate counts 3 bytes, as its U+FFFD replacement does when encoded.
 */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function shorten(name: string): string {
  return name.length > SHOWN_KEY_CHARS ? `${name.slice(0, SHOWN_KEY_CHARS)}…` : name;
}

/** A safe description of an invalid key: its leading run of name characters and what breaks it. */
function describeBadKey(key: string): string {
  if (key.length === 0) return 'key is empty';
  const prefix = /^[A-Za-z0-9_]*/.exec(key)?.[0] ?? '';
  if (prefix.length === 0) return `key must start with a letter or "_" (first character is not allowed)`;
  if (prefix.length === key.length) return `key "${shorten(key)}" must start with a letter or "_"`;
  const leading = /^[0-9]/.test(key) ? '; it must also start with a letter or "_"' : '';
  return `key starting "${shorten(prefix)}" has a character not allowed in env names at position ${prefix.length}${leading}`;
}

/**
 * Throws {@link EnvValidationError} listing every violation of the guest's env limits.
 */
export function validateEnvVars(envs: readonly EnvVar[]): void {
  const issues: EnvValidationIssue[] = [];
  if (!Array.isArray(envs)) {
    throw new EnvValidationError([{ code: 'not_an_array', message: 'env vars must be an array of {key, value}' }]);
  }
  if (envs.length > MAX_ENV_ITEMS) {
    issues.push({
      code: 'too_many_items',
      message: `${envs.length} env vars; at most ${MAX_ENV_ITEMS} are allowed`,
    });
  }
  const firstIndex = new Map<string, number>();
  let total = 0;
  envs.forEach((item: unknown, index) => {
    const rec = item as { key?: unknown; value?: unknown } | null;
    if (rec === null || typeof rec !== 'object') {
      issues.push({ code: 'invalid_item', index, message: `envs[${index}]: must be an object with string key and value` });
      return;
    }
    const { key, value } = rec;
    const keyOk = typeof key === 'string' && ENV_KEY_PATTERN.test(key);
    // Only a valid name is echoed back; for anything else the index is the reference.
    const where = keyOk ? `envs[${index}] "${shorten(key)}"` : `envs[${index}]`;
    const named = keyOk ? { key } : {};
    if (typeof key !== 'string') {
      issues.push({ code: 'invalid_item', index, message: `envs[${index}]: key must be a string` });
    } else {
      if (!keyOk) issues.push({ code: 'invalid_key', index, message: `envs[${index}]: ${describeBadKey(key)}` });
      const keyBytes = utf8Bytes(key);
      if (keyBytes > MAX_ENV_KEY_BYTES) {
        issues.push({
          code: 'key_too_long',
          index,
          ...named,
          message: `${where}: key is ${keyBytes} bytes; at most ${MAX_ENV_KEY_BYTES} are allowed`,
        });
      }
      total += keyBytes;
      const seen = firstIndex.get(key);
      if (seen === undefined) {
        firstIndex.set(key, index);
      } else {
        issues.push({
          code: 'duplicate_key',
          index,
          ...named,
          message: keyOk ? `${where}: duplicate key, first given at envs[${seen}]` : `envs[${index}]: same key as envs[${seen}]`,
        });
      }
    }
    if (typeof value !== 'string') {
      issues.push({ code: 'invalid_item', index, ...named, message: `${where}: value must be a string` });
    } else {
      const valueBytes = utf8Bytes(value);
      if (valueBytes > MAX_ENV_VALUE_BYTES) {
        issues.push({
          code: 'value_too_long',
          index,
          ...named,
          message: `${where}: value is ${valueBytes} bytes; at most ${MAX_ENV_VALUE_BYTES} are allowed`,
        });
      }
      total += valueBytes;
    }
  });
  if (total > MAX_ENV_TOTAL_BYTES) {
    issues.push({
      code: 'total_too_large',
      message: `env vars total ${total} bytes (keys + values); at most ${MAX_ENV_TOTAL_BYTES} are allowed`,
    });
  }
  if (issues.length > 0) throw new EnvValidationError(issues);
}
