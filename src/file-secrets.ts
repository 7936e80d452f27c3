// Every secret may come from a file instead of the environment (`NAME_FILE=/run/secrets/…`),
// the way Docker and Kubernetes secrets are mounted. Errors name the variable, never a value.
import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.ts';

export const SECRET_VARIABLES = [
  'PAYLOAD_ENCRYPTION_KEYS',
  'PHALA_API_KEY',
  'TEMPORAL_API_KEY',
  'SIGNER_PRIVATE_KEY',
  'CODEC_SERVER_TOKEN',
] as const;

/** The value of `name`, or the contents of the file `name_FILE` names (trailing newlines dropped). */
export function secretFromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`]?.trim();
  if (direct && file) throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  if (!file) return direct;
  try {
    return readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
  } catch (err) {
    throw new ConfigError(`${name}_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** A copy of the environment with every `*_FILE` secret read into its plain variable. */
export function withFileSecrets(env: NodeJS.ProcessEnv, names: readonly string[] = SECRET_VARIABLES): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of names) {
    const value = secretFromEnv(env, name);
    delete out[`${name}_FILE`];
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}
