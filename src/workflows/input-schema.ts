/**
 * The one check of an env update's input. The update workflow runs it first thing (a start from
 * the Temporal UI or another client skips `startEnvUpdate`), the client runs it before starting
 * anything, and the CLI before it connects. Workflow-safe: pure code only. Not zod: every field
 * has its own message (zod's defaults would quote the received value), so zod added nothing but
 * its own evaluation in each workflow's context, about half of the workflow bundle.
 *
 * Every problem names its field; env values are never shown (keys only when they are valid names,
 * see env-validation.ts). The total encoded size of a change is budgeted elsewhere; only the API's
 * documented env limits are checked here.
 */
import { ENV_KEY_PATTERN, EnvValidationError, MAX_ENV_ITEMS, validateEnvVars } from '../phala/env-validation.ts';
import type { ComposeHashPolicy, EnvVar, UpdateEnvInput } from './definitions.ts';

/**
 * The forms the API accepts for a CVM (DESIGN.md, the official SDK's CvmIdSchema): its hashed id,
 * numeric id, name (an RFC 1123 label), VM UUID with or without dashes, `app_<40 hex>`,
 * `instance_<40 hex>`, or a bare or 0x-prefixed 40-hex app id. All of them fit this pattern;
 * what does not (`..`, `/`, whitespace, `%`, `?`) would change the API path it is put into.
 */
export const CVM_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
export const MAX_CVM_ID_LENGTH = 128;

/**
 * Caller's idempotency key, also sent as the API's X-Request-ID: letters, digits, '.', '_', ':'
 * and '-', starting with a letter or digit, at most 200 characters. The rollout derives its
 * children's ids (`rollout-<rolloutId>-<cvmId>`) within the same set.
 */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
export const MAX_REQUEST_ID_LENGTH = 200;

/**
 * Blocks on top of a registration before phase 2. 256 is far past finality on every chain the
 * service targets (Ethereum finalises in about 64-96 blocks); a deeper wait adds no safety and
 * holds the CVM's change for hours. 0 would send phase 2 on an unconfirmed registration.
 */
export const MIN_CONFIRMATIONS = 1;
export const MAX_CONFIRMATIONS = 256;

export const COMPOSE_HASH_POLICIES = ['strict', 'warn', 'off'] as const satisfies readonly ComposeHashPolicy[];

export interface InputProblem {
  /** The input field, e.g. `cvmId`, `env`, `allowedKeys[2]`. */
  field: string;
  /** What is wrong; starts with the field's name and never holds an env value. */
  message: string;
}

/** The input as the workflow uses it: the env as a list, and the keys the CVM may read. */
export interface CheckedUpdateInput extends Omit<UpdateEnvInput, 'env'> {
  env: EnvVar[];
  envKeys: string[];
}

export type InputCheck = { ok: true; value: CheckedUpdateInput } | { ok: false; problems: InputProblem[] };

const KNOWN_FIELDS = ['cvmId', 'env', 'allowedKeys', 'confirmations', 'composeHashPolicy', 'waitForApplied', 'requestId'] as const;

export function cvmIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string' || id === '') return 'cvmId is required (a string)';
  if (id.length > MAX_CVM_ID_LENGTH) return `cvmId is ${id.length} characters; at most ${MAX_CVM_ID_LENGTH} are allowed`;
  if (!CVM_ID_PATTERN.test(id)) {
    return (
      "cvmId must be a CVM id: letters, digits, '_' and '-', starting with a letter or digit " +
      '(a name, UUID, cvm id, app_<hex> or instance_<hex>)'
    );
  }
  return undefined;
}

export function requestIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return 'requestId must be a string';
  if (id === '') return 'requestId must not be empty';
  if (id.length > MAX_REQUEST_ID_LENGTH) return `requestId is ${id.length} characters; at most ${MAX_REQUEST_ID_LENGTH} are allowed`;
  if (!REQUEST_ID_PATTERN.test(id)) {
    return "requestId may hold only letters, digits, '.', '_', ':' and '-', starting with a letter or digit (no spaces)";
  }
  return undefined;
}

export function confirmationsProblem(n: unknown): string | undefined {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_CONFIRMATIONS || n > MAX_CONFIRMATIONS) {
    const got = typeof n === 'number' && Number.isFinite(n) ? ` (got ${n})` : '';
    return `confirmations must be an integer from ${MIN_CONFIRMATIONS} to ${MAX_CONFIRMATIONS}${got}`;
  }
  return undefined;
}

export function composeHashPolicyProblem(p: unknown): string | undefined {
  if (typeof p === 'string' && (COMPOSE_HASH_POLICIES as readonly string[]).includes(p)) return undefined;
  // Not echoed: the field holds a typo at best, and the choices are short.
  return `composeHashPolicy must be ${COMPOSE_HASH_POLICIES.map((x) => `'${x}'`).join(', ')} (lower case)`;
}

/** A field name safe to show: an identifier, cut short. */
function shownField(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]{0,39}$/.test(name) ? name : '(a field whose name is not shown)';
}

/** The env as a list, or why it is not one. Values are never looked at beyond their type and size. */
function envList(env: unknown, problems: InputProblem[]): EnvVar[] | undefined {
  if (Array.isArray(env)) return env as EnvVar[];
  if (env === null || typeof env !== 'object') {
    problems.push({ field: 'env', message: 'env is required: an object of KEY: value, or a list of {key, value}' });
    return undefined;
  }
  const list: EnvVar[] = [];
  for (const [key, value] of Object.entries(env as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      const named = ENV_KEY_PATTERN.test(key) && key.length <= 64 ? `env.${key}` : 'env.<a key whose name is not valid>';
      problems.push({ field: 'env', message: `${named} must be a string` });
      continue;
    }
    list.push({ key, value });
  }
  return list;
}

function envProblems(list: EnvVar[], problems: InputProblem[]): void {
  if (list.length === 0) {
    problems.push({ field: 'env', message: 'env: at least one variable is required' });
    return;
  }
  try {
    validateEnvVars(list);
  } catch (err) {
    if (!(err instanceof EnvValidationError)) throw err;
    for (const issue of err.issues)
      problems.push({ field: issue.index === undefined ? 'env' : `env[${issue.index}]`, message: `env: ${issue.message}` });
  }
}

function allowedKeysOf(allowed: unknown, envKeys: string[], problems: InputProblem[]): string[] | undefined {
  if (!Array.isArray(allowed)) {
    problems.push({ field: 'allowedKeys', message: 'allowedKeys must be a list of env names' });
    return undefined;
  }
  if (allowed.length > MAX_ENV_ITEMS) {
    problems.push({ field: 'allowedKeys', message: `allowedKeys lists ${allowed.length} names; at most ${MAX_ENV_ITEMS} are allowed` });
  }
  const bad = allowed.flatMap((k, i) => (typeof k === 'string' && ENV_KEY_PATTERN.test(k) && k.length <= 255 ? [] : [i]));
  for (const i of bad.slice(0, 10)) {
    // Not echoed: a bad entry may be a pasted NAME=secret line.
    problems.push({
      field: `allowedKeys[${i}]`,
      message: `allowedKeys[${i}] is not a valid env name (letters, digits, '_', not starting with a digit)`,
    });
  }
  if (bad.length > 10)
    problems.push({ field: 'allowedKeys', message: `allowedKeys: ${bad.length - 10} more entries are not valid env names` });
  if (bad.length > 0) return undefined;
  const keys = allowed as string[];
  // The guest silently drops keys outside allowed_envs: refuse instead of losing them.
  const missing = envKeys.filter((k) => !keys.includes(k));
  if (missing.length > 0) {
    problems.push({ field: 'allowedKeys', message: `allowedKeys must include every env key; missing: ${missing.join(', ')}` });
    return undefined;
  }
  return [...new Set(keys)];
}

/**
 * Checks an update's input; never throws on any input. Fields are checked one by one so that
 * every problem is reported.
 */
export function checkUpdateEnvInput(input: unknown): InputCheck {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ field: '', message: 'the input must be an object {cvmId, env, ...}' }] };
  }
  const problems: InputProblem[] = [];
  const report = (field: string, message: string | undefined) => {
    if (message !== undefined) problems.push({ field, message });
  };
  const raw = input as Record<string, unknown>;
  const unknown = Object.keys(raw).filter((k) => !(KNOWN_FIELDS as readonly string[]).includes(k));
  for (const k of unknown.slice(0, 5)) {
    report(shownField(k), `${shownField(k)} is not an input field (known: ${KNOWN_FIELDS.join(', ')})`);
  }
  report('cvmId', cvmIdProblem(raw.cvmId));
  if (raw.requestId !== undefined) report('requestId', requestIdProblem(raw.requestId));
  if (raw.confirmations !== undefined) report('confirmations', confirmationsProblem(raw.confirmations));
  if (raw.composeHashPolicy !== undefined) report('composeHashPolicy', composeHashPolicyProblem(raw.composeHashPolicy));
  if (raw.waitForApplied !== undefined && typeof raw.waitForApplied !== 'boolean') {
    report('waitForApplied', 'waitForApplied must be true or false');
  }
  const before = problems.length;
  const env = envList(raw.env, problems);
  let envKeys: string[] | undefined;
  if (env) {
    // An env of only non-string values is reported as such, not as empty too.
    if (env.length > 0 || problems.length === before) envProblems(env, problems);
    if (problems.length === before) envKeys = env.map((e) => e.key);
  }
  if (raw.allowedKeys !== undefined && envKeys) envKeys = allowedKeysOf(raw.allowedKeys, envKeys, problems);
  if (problems.length > 0 || !env || !envKeys) return { ok: false, problems };
  return {
    ok: true,
    value: {
      cvmId: raw.cvmId as string,
      env,
      envKeys,
      ...(raw.allowedKeys !== undefined ? { allowedKeys: raw.allowedKeys as string[] } : {}),
      ...(raw.confirmations !== undefined ? { confirmations: raw.confirmations as number } : {}),
      ...(raw.composeHashPolicy !== undefined ? { composeHashPolicy: raw.composeHashPolicy as ComposeHashPolicy } : {}),
      ...(raw.waitForApplied !== undefined ? { waitForApplied: raw.waitForApplied as boolean } : {}),
      ...(raw.requestId !== undefined ? { requestId: raw.requestId as string } : {}),
    },
  };
}

/**
 * The message of the InvalidInput failure and of the client's error. One line: the CLI and the
 * UI's summaries show a failure's first line only.
 */
export function describeInputProblems(problems: readonly InputProblem[]): string {
  const n = problems.length;
  return `invalid input (${n} problem${n === 1 ? '' : 's'}): ${problems.map((p) => p.message).join('; ')}`;
}
