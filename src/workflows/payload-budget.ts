/**
 * How many bytes an env update needs in one Temporal payload, computed before anything is sent.
 *
 * Temporal refuses a payload over its blob limit (2 MiB by default, on Temporal Cloud too). A
 * workflow input over it cannot start; an activity input or result over it fails its task on every
 * attempt, so the step retries and then waits for an operator for good. The env's guest limits
 * (1 MiB of keys and values) do not bound this on their own: JSON writes `"` `\` and newlines as two
 * bytes and other control characters as six. So the start is checked here against the encoded
 * size of every payload the update will write, and refused with the numbers.
 *
 * Workflow-safe: no Node APIs, so the workflow, the client and the CLI share one computation.
 */
import type { EnvVar, UpdateEnvInput } from './definitions.ts';

/** Temporal's default per-payload limit (`limit.blobSize.error`), also Temporal Cloud's. */
export const DEFAULT_PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024;

/** Key ids are at most 64 characters (codec.ts); the budget assumes the longest. */
const MAX_KEY_ID_BYTES = 64;
/** AES-GCM nonce and tag the codec adds around each payload. */
const CODEC_SEAL_BYTES = 12 + 16;
/** What env-crypto adds around the env JSON: ephemeral x25519 key, IV and tag. */
const ENV_SEAL_BYTES = 32 + 12 + 16;
/** The sealed-env result carries the ciphertext's sha256 in front of it (sealed-env.ts). */
const SEALED_DIGEST_BYTES = 32;
/** A public key as hex, as the encrypt activity receives it. */
const PUBLIC_KEY_HEX = '0'.repeat(64);

export interface PayloadNeed {
  /** Which payload: the workflow input, an activity's input or result. */
  what: string;
  /** Its size as sent to Temporal: serialised, encrypted by the codec, with its protobuf framing. */
  bytes: number;
}

export interface PayloadBudget {
  /** UTF-8 bytes of keys and values: the measure of the guest's 1 MiB limit. */
  envBytes: number;
  needs: PayloadNeed[];
  largest: PayloadNeed;
  limitBytes: number;
  fits: boolean;
}

/** UTF-8 length without TextEncoder; JSON.stringify output holds no lone surrogates. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

/** A length-delimited protobuf field with a one-byte tag. */
function fieldLength(contentBytes: number): number {
  return 1 + varintLength(contentBytes) + contentBytes;
}

/** A `temporal.api.common.v1.Payload` with the given metadata value sizes and data size. */
function payloadLength(metadata: Record<string, number>, dataBytes: number): number {
  let n = 0;
  for (const [key, valueBytes] of Object.entries(metadata)) n += fieldLength(fieldLength(utf8Length(key)) + fieldLength(valueBytes));
  return n + (dataBytes > 0 ? fieldLength(dataBytes) : 0);
}

/** The payload as the server measures it: the codec's encrypted wrapper, framed in a Payloads list. */
function encodedBytes(encoding: 'json/plain' | 'binary/plain', dataBytes: number): number {
  const inner = payloadLength({ encoding: utf8Length(encoding) }, dataBytes);
  const outer = payloadLength(
    { encoding: utf8Length('binary/encrypted'), 'encryption-key-id': MAX_KEY_ID_BYTES },
    CODEC_SEAL_BYTES + inner,
  );
  return fieldLength(outer);
}

const jsonNeed = (what: string, value: unknown): PayloadNeed => ({
  what,
  bytes: encodedBytes('json/plain', utf8Length(JSON.stringify(value))),
});

function envList(env: unknown): EnvVar[] | undefined {
  const list = Array.isArray(env)
    ? (env as unknown[]).map((e) => e as EnvVar)
    : env !== null && typeof env === 'object'
      ? Object.entries(env as Record<string, unknown>).map(([key, value]) => ({ key, value }) as EnvVar)
      : undefined;
  if (!list || !list.every((e) => e !== null && typeof e === 'object' && typeof e.key === 'string' && typeof e.value === 'string')) {
    return undefined;
  }
  return list;
}

/**
 * The payloads an update of this input writes that grow with its env, and whether each fits.
 * Undefined when the env is not a well-formed object or list of strings: its shape is for
 * the input checks to report.
 */
export function envPayloadBudget(input: UpdateEnvInput, limitBytes = DEFAULT_PAYLOAD_LIMIT_BYTES): PayloadBudget | undefined {
  const list = envList(input?.env);
  if (!list) return undefined;
  const pairs = list.map(({ key, value }) => ({ key, value }));
  const envKeys = input.allowedKeys ?? pairs.map((p) => p.key);
  // The guest decrypts exactly this JSON (env-crypto.ts).
  const plaintextBytes = utf8Length(JSON.stringify({ env: pairs }));
  const needs = [
    jsonNeed('the workflow input', input),
    jsonNeed('the validated env', { env: list, envKeys }),
    jsonNeed('the encrypt step input', { env: list, publicKey: PUBLIC_KEY_HEX }),
    { what: 'the ciphertext', bytes: encodedBytes('binary/plain', SEALED_DIGEST_BYTES + ENV_SEAL_BYTES + plaintextBytes) },
  ];
  const largest = needs.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const envBytes = pairs.reduce((n, p) => n + utf8Length(p.key) + utf8Length(p.value), 0);
  return { envBytes, needs, largest, limitBytes, fits: largest.bytes <= limitBytes };
}

/**
 * Why this input does not fit Temporal's payload limit, or undefined when it does (or when its
 * env is malformed, which other checks report). Names sizes only, never a value.
 */
export function payloadBudgetProblem(input: UpdateEnvInput, limitBytes = DEFAULT_PAYLOAD_LIMIT_BYTES): string | undefined {
  const budget = envPayloadBudget(input, limitBytes);
  if (!budget || budget.fits) return undefined;
  return (
    `env is ${budget.envBytes} bytes; encoded it needs ${budget.largest.bytes} bytes of one payload (${budget.largest.what}); ` +
    `the limit is ${budget.limitBytes}. JSON writes quotes, backslashes and line breaks as 2 bytes and other control ` +
    'characters as 6: shorten the values or encode them (e.g. base64)'
  );
}
