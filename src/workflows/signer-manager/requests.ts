// What the manager's register and withdraw signals may carry, read from anything: the UI's
// signal form sends nothing or hand-written JSON, and one handler that throws would fail
// every workflow task of the manager, stopping it for every update of its key. Problems
// describe the shape of what came, never its content. Workflow-safe, no Node imports.
import { shapeOf, type Parsed } from '../operator-input.ts';
import type { RegistrationRequest, WithdrawRequest } from './definitions.ts';

const APP_ID = /^(0x)?[0-9a-fA-F]{40}$/;
const COMPOSE_HASH = /^(0x)?[0-9a-fA-F]{64}$/;
const MAX_ID = 1000;
/** Deeper than any chain's finality needs; a larger number is a typo that would never be answered. */
export const MAX_MANAGER_CONFIRMATIONS = 10_000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

type Check = (v: unknown) => string | undefined;

const id: Check = (v) =>
  typeof v === 'string' && v.trim() !== '' && v.length <= MAX_ID ? undefined : `a non-empty string of at most ${MAX_ID} characters`;
const appId: Check = (v) => (typeof v === 'string' && APP_ID.test(v) ? undefined : '40 hex digits, optionally 0x-prefixed');
const composeHash: Check = (v) => (typeof v === 'string' && COMPOSE_HASH.test(v) ? undefined : '64 hex digits, optionally 0x-prefixed');
const confirmations: Check = (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_MANAGER_CONFIRMATIONS
    ? undefined
    : `an integer from 1 to ${MAX_MANAGER_CONFIRMATIONS}`;
const block: Check = (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? undefined : 'a block number');

function parse<T>(what: string, arg: unknown, required: Record<string, Check>, optional: Record<string, Check> = {}): Parsed<T> {
  const fields = [...Object.keys(required), ...Object.keys(optional)];
  const form = `{${fields.map((f) => `"${f}"`).join(', ')}}`;
  if (!isObject(arg)) return { ok: false, problem: `${what} ignored: expected ${form}, got ${shapeOf(arg)}` };
  for (const [field, check] of Object.entries(required)) {
    const want = arg[field] === undefined ? 'missing' : check(arg[field]);
    if (want)
      return {
        ok: false,
        problem: `${what} ignored: ${field} ${want === 'missing' ? 'is missing' : `must be ${want}, got ${shapeOf(arg[field])}`}`,
      };
  }
  for (const [field, check] of Object.entries(optional)) {
    const want = arg[field] === undefined || arg[field] === null ? undefined : check(arg[field]);
    if (want) return { ok: false, problem: `${what} ignored: ${field} must be ${want}, got ${shapeOf(arg[field])}` };
  }
  const value: Record<string, unknown> = {};
  for (const f of fields) if (arg[f] !== undefined && arg[f] !== null) value[f] = arg[f];
  return { ok: true, value: value as T };
}

export function parseRegistrationRequest(arg: unknown): Parsed<RegistrationRequest> {
  return parse<RegistrationRequest>(
    'register signal',
    arg,
    { requestId: id, appId, composeHash, confirmations, notifyWorkflowId: id },
    { notAllowedAtBlock: block },
  );
}

export function parseWithdrawRequest(arg: unknown): Parsed<WithdrawRequest> {
  return parse<WithdrawRequest>('withdraw signal', arg, { requestId: id, appId, composeHash });
}
