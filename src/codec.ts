/**
 * Payload encryption for everything Temporal stores: workflow and activity inputs
 * and results, signals, memos and (through the failure converter) failure
 * messages and stack traces. Plaintext env values reach the Temporal service only
 * as AES-256-GCM ciphertext (DESIGN §6).
 *
 * Wire format of an encrypted payload:
 *   metadata  encoding          = "binary/encrypted"
 *             encryption-key-id = <key id>
 *   data      nonce(12) ‖ ciphertext ‖ tag(16)
 * The plaintext is the original Payload serialised as the
 * `temporal.api.common.v1.Payload` protobuf, so the original metadata (its
 * encoding, message type, …) is encrypted and restored intact. The key id is the
 * additional authenticated data: moving a payload to another key id label fails
 * authentication instead of being read under the wrong key.
 *
 * Key configuration (`PAYLOAD_ENCRYPTION_KEYS`): `id:key[,id:key…]`. The first
 * entry encrypts; every entry decrypts, which is how keys are rotated: put the new
 * key first and keep the old ones until no history that needs them is retained.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
// A dependency of @temporalio/common (pinned to the same version), so the
// protobuf encoding here is exactly the one the SDK itself writes.
import proto from '@temporalio/proto';
import { siblingModule } from './entry.ts';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
const ENCRYPTED_ENCODING_BYTES = utf8.encode(ENCRYPTED_ENCODING);

export interface PayloadKey {
  id: string;
  key: Uint8Array;
}

/** A key configuration problem. The message may name a key id, never key bytes. */
export class PayloadKeyConfigError extends Error {
  override name = 'PayloadKeyConfigError';
}

/** A payload that cannot be decrypted. The message may name a key id, never key or payload bytes. */
export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
  readonly keyId: string | undefined;
  constructor(message: string, keyId?: string) {
    super(message);
    this.keyId = keyId;
  }
}

/**
 * Parses `id:key[,id:key…]`. Keys are 32 bytes, given as hex (64 digits, optional
 * `0x`) or base64 (standard or URL-safe, padding optional). Whitespace around
 * entries is ignored so the value can be wrapped in env files.
 */
export function parsePayloadKeys(spec: string): PayloadKey[] {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new PayloadKeyConfigError('payload encryption key spec is empty; expected "id:key[,id:key...]"');
  }
  const keys: PayloadKey[] = [];
  const seen = new Set<string>();
  const entries = spec.split(',');
  for (const [index, rawEntry] of entries.entries()) {
    const entry = rawEntry.trim();
    // Entries are referred to by position, not content: an entry without an id is
    // most likely a bare key, and echoing it would leak it into logs.
    const position = `entry #${index + 1}`;
    if (entry === '') {
      throw new PayloadKeyConfigError(`payload encryption key spec: ${position} is empty`);
    }
    const colon = entry.indexOf(':');
    if (colon < 0) {
      throw new PayloadKeyConfigError(`payload encryption key spec: ${position} is missing the "id:" prefix`);
    }
    const id = entry.slice(0, colon).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (!KEY_ID_PATTERN.test(id)) {
      throw new PayloadKeyConfigError(
        `payload encryption key spec: ${position} has an invalid key id (1-64 chars of A-Z a-z 0-9 . _ -, starting with a letter or digit)`,
      );
    }
    if (seen.has(id)) {
      throw new PayloadKeyConfigError(`payload encryption key spec: duplicate key id "${id}"`);
    }
    seen.add(id);
    keys.push({ id, key: decodeKey(id, encoded) });
  }
  return keys;
}

function decodeKey(id: string, encoded: string): Uint8Array {
  if (encoded === '') {
    throw new PayloadKeyConfigError(`payload encryption key "${id}" is empty`);
  }
  let key: Uint8Array | undefined;
  const hex = encoded.startsWith('0x') || encoded.startsWith('0X') ? encoded.slice(2) : encoded;
  // 64 characters can only be hex here: base64 of 32 bytes is 43-44 characters.
  if (hex.length === KEY_BYTES * 2 && /^[0-9a-fA-F]+$/.test(hex)) {
    key = new Uint8Array(Buffer.from(hex, 'hex'));
  } else {
    key = decodeStrictBase64(encoded);
    if (key === undefined) {
      throw new PayloadKeyConfigError(`payload encryption key "${id}" is neither ${KEY_BYTES * 2} hex digits nor valid base64`);
    }
  }
  if (key.length !== KEY_BYTES) {
    throw new PayloadKeyConfigError(`payload encryption key "${id}" is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES}`);
  }
  if (key.every((b) => b === 0)) {
    throw new PayloadKeyConfigError(`payload encryption key "${id}" is all zeros`);
  }
  return key;
}

/**
 * Base64 (standard or URL-safe, padding optional) that rejects anything Node's
 * lenient decoder would silently skip, so a typo cannot turn into a different key.
 */
export function decodeStrictBase64(text: string): Uint8Array | undefined {
  const normalised = text.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(normalised)) return undefined;
  const unpadded = normalised.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return undefined;
  if (normalised.length !== unpadded.length && normalised.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(unpadded, 'base64');
  // Non-zero trailing bits mean the text is not the canonical encoding of any bytes.
  if (bytes.toString('base64').replace(/=+$/, '') !== unpadded) return undefined;
  return new Uint8Array(bytes);
}

function validateKeys(keys: readonly PayloadKey[]): void {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new PayloadKeyConfigError('at least one payload encryption key is required');
  }
  const seen = new Set<string>();
  for (const [index, k] of keys.entries()) {
    if (typeof k?.id !== 'string' || !KEY_ID_PATTERN.test(k.id)) {
      throw new PayloadKeyConfigError(`payload encryption key #${index + 1} has an invalid key id`);
    }
    if (seen.has(k.id)) throw new PayloadKeyConfigError(`duplicate payload encryption key id "${k.id}"`);
    seen.add(k.id);
    if (!(k.key instanceof Uint8Array) || k.key.length !== KEY_BYTES) {
      throw new PayloadKeyConfigError(`payload encryption key "${k.id}" must be exactly ${KEY_BYTES} bytes`);
    }
  }
}

/** Key ids from payload metadata are untrusted: bound and quote them before they enter a message. */
function describeKeyId(id: string): string {
  const printable = id.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(printable.length > 64 ? `${printable.slice(0, 64)}...` : printable);
}

function bytesEqual(a: Uint8Array | null | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The environment switch that lets a worker run payloads nobody encrypted: development only. */
export const ACCEPT_UNENCRYPTED_ENV = 'PAYLOAD_ACCEPT_UNENCRYPTED';

/**
 * A payload that should have been encrypted and was not: sent by a client without this codec
 * (or with it disabled). Decoding it would let plaintext secrets run through the service
 * unnoticed, so it is refused. The message names the encoding and the expected key ids only.
 */
export class UnencryptedPayloadError extends PayloadDecryptionError {
  override name = 'UnencryptedPayloadError';
}

export interface PayloadCodecOptions {
  /**
   * Decode payloads that are not encrypted as they are, instead of refusing them. For a
   * development stack, or while histories written before encryption was enabled still run;
   * the codec server sets it because it only shows payloads to the UI.
   */
  acceptUnencrypted?: boolean;
}

const NULL_ENCODING_BYTES = utf8.encode('binary/null');

/** A payload with no data and no encoding other than null: nothing secret can be in it. */
function carriesNothing(payload: Payload): boolean {
  if (payload.data && payload.data.length > 0) return false;
  const encoding = payload.metadata?.encoding;
  return !encoding || encoding.length === 0 || bytesEqual(encoding, NULL_ENCODING_BYTES);
}

/**
 * AES-256-GCM PayloadCodec with key ids. Keys are held in a private field, as KeyObjects, so
 * that inspecting or logging the codec never prints them. Node's own AES-GCM (OpenSSL) rather
 * than noble's: every payload of every task passes through here, on the worker's main thread,
 * and OpenSSL's takes about a quarter of the time per payload.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  readonly #keys: Map<string, KeyObject>;
  readonly #encryptionKeyId: string;
  readonly #acceptUnencrypted: boolean;

  constructor(keys: readonly PayloadKey[], options: PayloadCodecOptions = {}) {
    validateKeys(keys);
    this.#acceptUnencrypted = options.acceptUnencrypted === true;
    // Copies, so a caller zeroing or reusing its buffers cannot change our keys.
    this.#keys = new Map(keys.map((k) => [k.id, createSecretKey(Uint8Array.from(k.key))]));
    this.#encryptionKeyId = keys[0]!.id;
  }

  /** Key id that new payloads are encrypted with. */
  get encryptionKeyId(): string {
    return this.#encryptionKeyId;
  }

  /** Every key id accepted for decryption, encryption key first. */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.#encryptionKeyId;
    const key = this.#keys.get(keyId)!;
    const aad = utf8.encode(keyId);
    return payloads.map((payload) => {
      const plaintext = ProtoPayload.encode(payload).finish();
      // A fresh random 96-bit nonce per payload; with one key the collision bound
      // stays negligible far beyond any realistic number of payloads (~2^32).
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES }).setAAD(aad);
      const data = new Uint8Array(Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
      return {
        metadata: {
          encoding: ENCRYPTED_ENCODING_BYTES.slice(),
          [KEY_ID_METADATA]: utf8.encode(keyId),
        },
        data,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.#decodeOne(payload));
  }

  #decodeOne(payload: Payload): Payload {
    if (!bytesEqual(payload.metadata?.encoding, ENCRYPTED_ENCODING_BYTES)) {
      if (this.#acceptUnencrypted || carriesNothing(payload)) return payload;
      const encoding = payload.metadata?.encoding?.length ? describeKeyId(utf8Decoder.decode(payload.metadata.encoding)) : 'none';
      throw new UnencryptedPayloadError(
        `refused a payload that is not encrypted (encoding ${encoding}, expected ${JSON.stringify(ENCRYPTED_ENCODING)} ` +
          `with key id ${this.keyIds.join(' or ')}): start and signal workflows with a client whose data converter is ` +
          `createDataConverter(PAYLOAD_ENCRYPTION_KEYS), or through the codec server; ${ACCEPT_UNENCRYPTED_ENV}=true ` +
          'accepts such payloads on a development stack only',
      );
    }

    const rawKeyId = payload.metadata?.[KEY_ID_METADATA];
    if (!rawKeyId || rawKeyId.length === 0) {
      throw new PayloadDecryptionError(`encrypted payload has no "${KEY_ID_METADATA}" metadata`);
    }
    const keyId = utf8Decoder.decode(rawKeyId);
    const key = this.#keys.get(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `encrypted payload uses unknown key id ${describeKeyId(keyId)}; configured key ids: ${this.keyIds.join(', ')}`,
        keyId,
      );
    }
    const data = payload.data ?? new Uint8Array(0);
    if (data.length < NONCE_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(`encrypted payload for key id ${describeKeyId(keyId)} is too short (${data.length} bytes)`, keyId);
    }
    let plaintext: Uint8Array;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES })
        .setAAD(utf8.encode(keyId))
        .setAuthTag(data.subarray(data.length - TAG_BYTES));
      plaintext = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      // The cause is dropped on purpose: a library error could one day quote its inputs.
      throw new PayloadDecryptionError(
        `encrypted payload failed authentication with key id ${describeKeyId(keyId)} (tampered, relabelled, or a different key under the same id)`,
        keyId,
      );
    }
    try {
      const decoded = ProtoPayload.decode(plaintext);
      const result: Payload = { metadata: decoded.metadata, data: decoded.data };
      if (decoded.externalPayloads.length > 0) result.externalPayloads = decoded.externalPayloads;
      return result;
    } catch {
      throw new PayloadDecryptionError(`encrypted payload for key id ${describeKeyId(keyId)} decrypted but is not a valid Payload`, keyId);
    }
  }
}

/**
 * Module exporting the failure converter. It must be a path, not an instance:
 * the SDK loads it inside the workflow sandbox bundle as well as in the client
 * and worker. It is a separate file so that node:crypto and this codec stay out of the
 * workflow bundle.
 */
export const failureConverterPath = siblingModule(import.meta.url, './codec-failure-converter');

/**
 * Data converter for every Temporal Client and Worker of this service: all
 * payloads encrypted, and failure messages and stack traces moved into an
 * (encrypted) payload instead of travelling in clear.
 */
export function createDataConverter(keysSpec: string, options: PayloadCodecOptions = {}): DataConverter {
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(keysSpec), options);
  return { payloadCodecs: [codec], failureConverterPath };
}

/** A fresh key spec with one random key, e.g. for a local stack's env file. */
export function generatePayloadKeySpec(id = 'k1'): string {
  if (!KEY_ID_PATTERN.test(id)) {
    throw new PayloadKeyConfigError('invalid key id (1-64 chars of A-Z a-z 0-9 . _ -, starting with a letter or digit)');
  }
  return `${id}:${Buffer.from(randomBytes(KEY_BYTES)).toString('base64')}`;
}
