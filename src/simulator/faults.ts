/**
 * Injected failures, so that clients can be tested against what the real service and the network
 * in front of it do on a bad day: 5xx answers, 429 with Retry-After, slow answers, connections
 * dropped before or after the request took effect, and a backend RPC that lags behind the chain
 * (467 for the first K phase-2 calls).
 *
 * Hostile answers too: a body far larger than any real one, a field rewritten to a wrong type or
 * value (a bad KMS signature, a 465 naming another app or chain), and a Retry-After header of
 * any text.
 *
 * Rules are scoped by route template and optionally by CVM, and can be limited to a number of
 * firings, so tests sharing one simulator inject faults on their own CVMs only.
 */
import { randomUUID } from 'node:crypto';

/** 403 is a refusal for good (no access to the CVM), 404 an endpoint that is not there; the others are transient. */
export type FaultErrorStatus = 403 | 404 | 429 | 500 | 502 | 503;
/**
 * 'before': the request never reaches the handler; 'after': it takes effect, the answer is lost;
 * 'accepted': like 'after', but only when the handler accepted (2xx); other answers get through
 * and do not use up a firing (phase 1's 465 passes, the 202 of the phase that applies is lost).
 */
export type DropWhen = 'before' | 'after' | 'accepted';

export interface FaultRule {
  id: string;
  /** Route template ('PATCH /cvms/{id}/envs'), 'METHOD *', or '*'. */
  route: string;
  /** Only requests addressed to this CVM (by any of its identifiers) match. */
  cvmId: string | null;
  latencyMs: number;
  /** `retryAfter`: the Retry-After header's text as given (garbage and huge values included). */
  error: { status: FaultErrorStatus; rate: number; retryAfterSeconds: number; retryAfter?: string } | null;
  drop: { rate: number; when: DropWhen } | null;
  /** Rewrites the handler's answer instead of failing it. */
  tamper: Tamper | null;
  /** Firings left; null for unlimited. */
  remaining: number | null;
}

export interface Tamper {
  /** Answer a 200 JSON body of this many bytes instead. */
  hugeBodyBytes: number | null;
  /**
   * Fields of the answer (success or error body) set to a value. A path is dotted; a segment
   * `[field=name]` picks the elements of an array whose `field` is `name` (the 465's details),
   * `[*]` every element;
   * a path missing at the top is looked up under `detail` (the FastAPI envelope).
   */
  set: { path: string; value: unknown }[];
}

export interface TamperInput {
  hugeBodyBytes?: number;
  set?: { path: string; value: unknown }[];
}

export interface Phase2Lag {
  id: string;
  cvmId: string | null;
  /** Phase-2 calls still to be answered 467. */
  remaining: number;
}

export interface FaultRuleInput {
  id?: string;
  route?: string;
  cvmId?: string | null;
  latencyMs?: number;
  error?: { status: number; rate?: number; retryAfterSeconds?: number; retryAfter?: string } | null;
  /** Shorthand for error {status: 429}. */
  rateLimit?: { rate?: number; retryAfterSeconds?: number; retryAfter?: string } | null;
  tamper?: TamperInput | null;
  drop?: { rate?: number; when?: DropWhen } | null;
  times?: number | null;
}

export interface Phase2LagInput {
  id?: string;
  cvmId?: string | null;
  calls: number;
}

export interface FaultConfigInput {
  rules?: FaultRuleInput[];
  phase2Lag?: Phase2LagInput[];
  /** Seed of the random source for rate-based faults; same seed, same sequence. */
  seed?: number;
}

export interface FaultDecision {
  latencyMs: number;
  error: { status: FaultErrorStatus; retryAfterSeconds: number; retryAfter?: string } | null;
  tamper: Tamper | null;
  drop: DropWhen | null;
  /** With drop 'accepted': the rule whose firing is used up if the answer is a 2xx. */
  dropRuleId?: string;
  ruleIds: string[];
}

export class FaultInputError extends Error {
  override readonly name = 'FaultInputError';
}

/** A small seeded generator (mulberry32): the same seed gives the same fault sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rate(name: string, v: unknown): number {
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new FaultInputError(`${name} must be a number in [0, 1]`);
  return v;
}

function nonNegInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new FaultInputError(`${name} must be an integer in [0, ${max}]`);
  }
  return v;
}

function positiveTimes(name: string, v: unknown): number {
  const n = nonNegInt(name, v, 1_000_000);
  if (n === 0) throw new FaultInputError(`${name} must be at least 1 (omit it for no limit)`);
  return n;
}

export class Faults {
  rules: FaultRule[] = [];
  lags: Phase2Lag[] = [];
  #random: () => number;
  readonly #routes: readonly string[];

  constructor(knownRoutes: readonly string[], initial?: FaultConfigInput) {
    this.#routes = knownRoutes;
    this.#random = mulberry32(initial?.seed ?? Math.floor(Math.random() * 2 ** 32));
    if (initial) this.add(initial);
  }

  /** Adds rules and lags; returns the ids assigned, in input order. */
  add(input: FaultConfigInput): { rules: string[]; phase2Lag: string[] } {
    if (input === null || typeof input !== 'object') throw new FaultInputError('fault config must be an object');
    const rules = (input.rules ?? []).map((r, i) => this.#parseRule(r, i));
    const lags = (input.phase2Lag ?? []).map((l, i) => this.#parseLag(l, i));
    if (input.seed !== undefined) this.#random = mulberry32(nonNegInt('seed', input.seed, 2 ** 32 - 1));
    this.rules.push(...rules);
    this.lags.push(...lags);
    return { rules: rules.map((r) => r.id), phase2Lag: lags.map((l) => l.id) };
  }

  /** Removes rules and lags by id or CVM; with no filter, everything. Returns how many went. */
  remove(filter: { id?: string; cvmId?: string } = {}): number {
    const keep = (x: { id: string; cvmId: string | null }) =>
      filter.id === undefined && filter.cvmId === undefined
        ? false
        : !((filter.id !== undefined && x.id === filter.id) || (filter.cvmId !== undefined && x.cvmId === filter.cvmId));
    const before = this.rules.length + this.lags.length;
    this.rules = this.rules.filter(keep);
    this.lags = this.lags.filter(keep);
    return before - this.rules.length - this.lags.length;
  }

  snapshot(): { rules: FaultRule[]; phase2Lag: Phase2Lag[] } {
    return structuredClone({ rules: this.rules, phase2Lag: this.lags });
  }

  /** What to do to one request. Consumes firings of the rules that acted. */
  decide(method: string, route: string, cvmId: string | null): FaultDecision {
    const decision: FaultDecision = { latencyMs: 0, error: null, tamper: null, drop: null, ruleIds: [] };
    for (const rule of this.rules) {
      if (!this.#matches(rule, method, route, cvmId)) continue;
      let fired = false;
      if (rule.latencyMs > 0) {
        decision.latencyMs += rule.latencyMs;
        fired = true;
      }
      if (rule.drop && decision.drop === null && this.#random() < rule.drop.rate) {
        decision.drop = rule.drop.when;
        // Fires only once the answer is known to be an acceptance: see consumeAccepted.
        if (rule.drop.when === 'accepted') decision.dropRuleId = rule.id;
        else fired = true;
      }
      if (rule.error && decision.error === null && decision.drop !== 'before' && this.#random() < rule.error.rate) {
        decision.error = {
          status: rule.error.status,
          retryAfterSeconds: rule.error.retryAfterSeconds,
          ...(rule.error.retryAfter === undefined ? {} : { retryAfter: rule.error.retryAfter }),
        };
        fired = true;
      }
      if (rule.tamper && decision.tamper === null && decision.error === null) {
        decision.tamper = rule.tamper;
        fired = true;
      }
      if (fired) {
        decision.ruleIds.push(rule.id);
        if (rule.remaining !== null) rule.remaining -= 1;
      }
    }
    this.rules = this.rules.filter((r) => r.remaining === null || r.remaining > 0);
    return decision;
  }

  /** The request was accepted and its answer dropped: uses up a firing of that rule. */
  consumeAccepted(ruleId: string): void {
    const rule = this.rules.find((r) => r.id === ruleId);
    if (rule?.remaining != null) rule.remaining -= 1;
    this.rules = this.rules.filter((r) => r.remaining === null || r.remaining > 0);
  }

  /** True when this phase-2 call must be answered 467 as if the backend's RPC lagged. */
  takePhase2Lag(cvmId: string): boolean {
    const lag = this.lags.find((l) => l.remaining > 0 && (l.cvmId === null || l.cvmId === cvmId));
    if (!lag) return false;
    lag.remaining -= 1;
    this.lags = this.lags.filter((l) => l.remaining > 0);
    return true;
  }

  #matches(rule: FaultRule, method: string, route: string, cvmId: string | null): boolean {
    if (rule.cvmId !== null && rule.cvmId !== cvmId) return false;
    if (rule.route === '*') return true;
    if (rule.route === `${method} *`) return true;
    return rule.route === `${method} ${route}`;
  }

  #parseRule(input: FaultRuleInput, index: number): FaultRule {
    const where = `rules[${index}]`;
    if (input === null || typeof input !== 'object') throw new FaultInputError(`${where} must be an object`);
    const route = input.route ?? '*';
    const m = /^([A-Z]+) (.+)$/.exec(route);
    const valid = route === '*' || (m !== null && (m[2] === '*' || this.#routes.includes(route)));
    if (!valid) {
      throw new FaultInputError(`${where}.route must be "*", "METHOD *" or one of: ${this.#routes.join(', ')}`);
    }
    let error: FaultRule['error'] = null;
    const err = input.rateLimit ? { status: 429, ...input.rateLimit } : input.error;
    if (err) {
      if (![403, 404, 429, 500, 502, 503].includes(err.status))
        throw new FaultInputError(`${where}.error.status must be 403, 404, 429, 500, 502 or 503`);
      error = {
        status: err.status as FaultErrorStatus,
        rate: rate(`${where}.error.rate`, err.rate),
        retryAfterSeconds:
          err.retryAfterSeconds === undefined ? 1 : nonNegInt(`${where}.error.retryAfterSeconds`, err.retryAfterSeconds, 3600),
      };
      if (err.retryAfter !== undefined) {
        if (typeof err.retryAfter !== 'string' || !/^[\x20-\x7e]{0,200}$/.test(err.retryAfter)) {
          throw new FaultInputError(`${where}.error.retryAfter must be printable ASCII, at most 200 characters`);
        }
        error.retryAfter = err.retryAfter;
      }
    }
    let tamper: Tamper | null = null;
    if (input.tamper) {
      const t = input.tamper;
      const hugeBodyBytes =
        t.hugeBodyBytes === undefined ? null : nonNegInt(`${where}.tamper.hugeBodyBytes`, t.hugeBodyBytes, 256 * 1024 * 1024);
      if (
        t.set !== undefined &&
        (!Array.isArray(t.set) || t.set.some((x) => typeof x?.path !== 'string' || x.path === '' || !('value' in x)))
      ) {
        throw new FaultInputError(`${where}.tamper.set must be a list of {path, value}`);
      }
      const set = (t.set ?? []).map((x) => ({ path: x.path, value: x.value }));
      if (hugeBodyBytes === null && set.length === 0) throw new FaultInputError(`${where}.tamper needs hugeBodyBytes or set`);
      tamper = { hugeBodyBytes, set };
    }
    let drop: FaultRule['drop'] = null;
    if (input.drop) {
      const when = input.drop.when ?? 'before';
      if (when !== 'before' && when !== 'after' && when !== 'accepted') {
        throw new FaultInputError(`${where}.drop.when must be "before", "after" or "accepted"`);
      }
      drop = { rate: rate(`${where}.drop.rate`, input.drop.rate), when };
    }
    const latencyMs = input.latencyMs === undefined ? 0 : nonNegInt(`${where}.latencyMs`, input.latencyMs, 120_000);
    if (!error && !drop && !tamper && latencyMs === 0) {
      throw new FaultInputError(`${where} has no effect: give error, rateLimit, tamper, drop or latencyMs`);
    }
    return {
      id: input.id ?? `fault_${randomUUID().slice(0, 8)}`,
      route,
      cvmId: input.cvmId ?? null,
      latencyMs,
      error,
      drop,
      tamper,
      remaining: input.times === undefined || input.times === null ? null : positiveTimes(`${where}.times`, input.times),
    };
  }

  #parseLag(input: Phase2LagInput, index: number): Phase2Lag {
    const where = `phase2Lag[${index}]`;
    if (input === null || typeof input !== 'object') throw new FaultInputError(`${where} must be an object`);
    return {
      id: input.id ?? `lag_${randomUUID().slice(0, 8)}`,
      cvmId: input.cvmId ?? null,
      remaining: nonNegInt(`${where}.calls`, input.calls, 1_000_000),
    };
  }
}

/** The answer with the tamper's fields set; a copy, the handler's objects stay as they were. */
export function tamperBody(body: unknown, tamper: Tamper): unknown {
  const out = structuredClone(body) as unknown;
  for (const { path, value } of tamper.set) {
    const segments = path.split('.');
    const root = out as Record<string, unknown> | null;
    const start =
      root !== null && typeof root === 'object' && !(segments[0]! in root) && typeof root.detail === 'object' ? root.detail : root;
    let nodes: unknown[] = [start];
    for (const segment of segments.slice(0, -1))
      nodes = nodes.flatMap((n) => (n !== null && typeof n === 'object' ? step(n, segment) : []));
    for (const n of nodes) if (n !== null && typeof n === 'object') (n as Record<string, unknown>)[segments.at(-1)!] = value;
  }
  return out;
}

/** `[*]`: every element; `[key=value]`: the elements whose `key` is `value`; else a property. */
function step(node: object, segment: string): unknown[] {
  if (segment === '[*]') return Array.isArray(node) ? node : [];
  const pick = /^\[(\w+)=(.*)\]$/.exec(segment);
  if (pick) return Array.isArray(node) ? node.filter((x) => x !== null && typeof x === 'object' && String(x[pick[1]!]) === pick[2]) : [];
  return [(node as Record<string, unknown>)[segment]];
}
