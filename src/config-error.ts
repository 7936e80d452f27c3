/** A configuration problem; the message names the variable and never quotes a secret. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
