import { getAddress, isAddress, type Address, type Hex } from 'viem';
import { ChainError } from './errors.ts';

/**
 * Parsers for values that arrive through Temporal history or operator input, where
 * everything is a string. Each names the field it rejects, and none echoes a value
 * that could be a secret (a wrong-length hex could be a pasted private key).
 */

/** The Phala API sends compose hashes as bare hex; the contract wants a 0x-prefixed bytes32. */
export function normalizeComposeHash(value: string, field = 'composeHash'): Hex {
  const hex = value.trim().toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new ChainError('INVALID_INPUT', `${field} must be 32 bytes of hex (64 hex digits, optional 0x), got ${describe(value)}`);
  }
  return `0x${hex}`;
}

export function parseTxHash(value: string, field = 'txHash'): Hex {
  const hex = value.trim().toLowerCase();
  if (!/^0x[0-9a-f]{64}$/.test(hex)) {
    throw new ChainError('INVALID_INPUT', `${field} must be a 0x-prefixed 32-byte transaction hash, got ${describe(value)}`);
  }
  return hex as Hex;
}

export function parseAddress(value: string, field = 'address'): Address {
  const trimmed = value.trim();
  if (!isAddress(trimmed, { strict: false })) {
    throw new ChainError('INVALID_INPUT', `${field} must be a 20-byte 0x address, got ${describe(value)}`);
  }
  return getAddress(trimmed);
}

/** Wei amounts cross the history boundary as decimal strings (JSON has no bigint). */
export function parseWei(value: string | bigint | number, field: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n) throw new ChainError('INVALID_INPUT', `${field} must not be negative`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ChainError('INVALID_INPUT', `${field} must be a non-negative integer; pass large values as decimal strings`);
    }
    return BigInt(value);
  }
  const trimmed = value.trim();
  if (!/^[0-9]+$/.test(trimmed)) {
    throw new ChainError('INVALID_INPUT', `${field} must be a decimal string of wei, got ${describe(value)}`);
  }
  return BigInt(trimmed);
}

export function parseNonce(value: number, field = 'nonce'): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ChainError('INVALID_INPUT', `${field} must be a non-negative integer`);
  }
  return value;
}

export function parseBlockNumber(value: number | bigint, field: string): bigint {
  const n = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (n < 0n) throw new ChainError('INVALID_INPUT', `${field} must be a non-negative integer block number`);
  return n;
}

/** Shape only, never content: the value may be a key pasted into the wrong field. */
function describe(value: unknown): string {
  if (typeof value !== 'string') return typeof value;
  return `a string of ${value.length} characters`;
}

/** Block numbers and nonces fit in a double for any real chain; history stays plain JSON. */
export function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ChainError('INCONSISTENT', `${field} ${value} is beyond Number.MAX_SAFE_INTEGER`);
  }
  return Number(value);
}
