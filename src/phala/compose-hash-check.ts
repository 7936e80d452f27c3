/**
 * Does the compose hash a 465 asks us to register mean "the CVM's current compose with exactly
 * the allowed_envs we asked for"? The backend's serialisation is not public, so the answer
 * tries every known writer (compose-serialisations.ts) on the document as served, after the
 * SDKs' preprocessing, and without null fields, with our keys in our order or sorted. A match
 * then passes a check of its meaning: allowed_envs is exactly our set, and every other field is
 * the current compose's, except what a documented preprocessing step drops.
 *
 * Three verdicts, because "we could not reproduce it" is not evidence of tampering:
 * - verified: some known writer produces exactly this hash from current + our keys;
 * - contradicted: a known writer reproduces the CVM's *current* compose_hash from the served
 *   compose (so we know how the backend writes) but not the requested one: the API asks to
 *   register a compose that differs from "current + our keys" in some other way;
 * - unexplained: no known writer reproduces even the current hash.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { COMPOSE_SERIALISATIONS, type ComposeDocument } from './compose-serialisations.ts';

interface ComposeTransform {
  name: string;
  apply(doc: ComposeDocument): ComposeDocument;
}

const COMPOSE_RUNNERS = new Set(['docker-compose', 'nerdctl-compose']);

/** What @phala/cloud's preprocessAppCompose and the dstack Python SDK's normalize step drop. */
export function sdkPreprocess(doc: ComposeDocument): ComposeDocument {
  const out = { ...doc };
  if (out.runner === 'bash' && 'docker_compose_file' in out) delete out.docker_compose_file;
  else if (typeof out.runner === 'string' && COMPOSE_RUNNERS.has(out.runner) && 'bash_script' in out) delete out.bash_script;
  if ('pre_launch_script' in out && !out.pre_launch_script) delete out.pre_launch_script;
  return out;
}

function dropNulls(doc: ComposeDocument): ComposeDocument {
  return Object.fromEntries(Object.entries(doc).filter(([, v]) => v !== null));
}

const TRANSFORMS: readonly ComposeTransform[] = [
  { name: 'as served', apply: (d) => d },
  { name: 'SDK preprocessing', apply: sdkPreprocess },
  { name: 'null fields dropped', apply: dropNulls },
  { name: 'SDK preprocessing and null fields dropped', apply: (d) => dropNulls(sdkPreprocess(d)) },
];

export interface HashExplanation {
  serialisation: string;
  transform: string;
  /** The document whose bytes hash to the explained value. */
  document: ComposeDocument;
}

function hashText(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}

function normaliseHash(h: string): string {
  return h.trim().replace(/^0x/i, '').toLowerCase();
}

/** The first (serialisation, transform) under which `doc` hashes to `hash`, or null. */
export function explainComposeHash(doc: ComposeDocument, hash: string): HashExplanation | null {
  const want = normaliseHash(hash);
  for (const transform of TRANSFORMS) {
    const document = transform.apply(doc);
    for (const s of COMPOSE_SERIALISATIONS) {
      if (hashText(s.serialise(document)) === want) return { serialisation: s.name, transform: transform.name, document };
    }
  }
  return null;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

/** A field a writer may leave out without changing what the CVM runs. */
function droppable(field: string, value: unknown, current: ComposeDocument): boolean {
  if (value === null || value === undefined) return true;
  if (field === 'pre_launch_script') return !value;
  if (field === 'bash_script') return typeof current.runner === 'string' && COMPOSE_RUNNERS.has(current.runner);
  if (field === 'docker_compose_file') return current.runner === 'bash';
  return false;
}

/**
 * The meaning check: what differs between `candidate` (the document a hash was explained with)
 * and the current compose, other than allowed_envs being exactly `allowedKeys`. Empty means
 * the candidate is the current compose with our keys.
 */
export function semanticDifferences(current: ComposeDocument, candidate: ComposeDocument, allowedKeys: readonly string[]): string[] {
  const problems: string[] = [];
  const envs = candidate.allowed_envs;
  if (!Array.isArray(envs) || !envs.every((k) => typeof k === 'string')) {
    problems.push('allowed_envs is missing or not a list of names');
  } else {
    const asked = new Set(allowedKeys);
    const got = new Set(envs as string[]);
    if (got.size !== envs.length) problems.push('allowed_envs repeats a name');
    const extra = [...got].filter((k) => !asked.has(k));
    const missing = [...asked].filter((k) => !got.has(k));
    if (extra.length > 0) problems.push(`allowed_envs adds ${extra.join(', ')}`);
    if (missing.length > 0) problems.push(`allowed_envs lacks ${missing.join(', ')}`);
  }
  for (const field of new Set([...Object.keys(current), ...Object.keys(candidate)])) {
    if (field === 'allowed_envs') continue;
    const inCurrent = Object.hasOwn(current, field);
    const inCandidate = Object.hasOwn(candidate, field);
    if (inCurrent && !inCandidate) {
      if (!droppable(field, current[field], current)) problems.push(`${field} is dropped`);
    } else if (!inCurrent && inCandidate) {
      problems.push(`${field} is added`);
    } else if (!sameJson(current[field], candidate[field])) {
      problems.push(`${field} differs`);
    }
  }
  return problems;
}

export type ComposeHashVerdict = 'verified' | 'contradicted' | 'unexplained';

export interface ComposeHashAssessment {
  verdict: ComposeHashVerdict;
  /** How the requested hash was reproduced (verified only). */
  requested?: Omit<HashExplanation, 'document'>;
  /** How the CVM's current compose_hash was reproduced from the served compose, when it was. */
  current?: Omit<HashExplanation, 'document'>;
  /** The hash of current + our keys under the writer that explains the current hash (contradicted only). */
  computed?: string;
  detail: string;
}

/**
 * Judges the hash a 465 asks for against the CVM's served compose and our allowed keys.
 * `currentHash` is the CVM's compose_hash from GET /cvms/{id}, when known.
 */
export function assessRequestedComposeHash(input: {
  current: ComposeDocument;
  currentHash?: string | null | undefined;
  allowedKeys: readonly string[];
  requested: string;
}): ComposeHashAssessment {
  const { current, allowedKeys } = input;
  const orders = [allowedKeys, [...allowedKeys].sort()];
  for (const keys of orders) {
    const found = explainComposeHash({ ...current, allowed_envs: [...keys] }, input.requested);
    if (!found) continue;
    const problems = semanticDifferences(current, found.document, allowedKeys);
    if (problems.length > 0) continue;
    const { document: _d, ...how } = found;
    return {
      verdict: 'verified',
      requested: how,
      detail: `the current compose with allowed_envs=[${keys.join(',')}] hashes to the requested value (${how.serialisation}, ${how.transform})`,
    };
  }
  const currentFound = input.currentHash ? explainComposeHash(current, input.currentHash) : null;
  if (currentFound) {
    const { document: _d, ...how } = currentFound;
    const writer = COMPOSE_SERIALISATIONS.find((s) => s.name === how.serialisation)!;
    const transform = TRANSFORMS.find((t) => t.name === how.transform)!;
    const computed = hashText(writer.serialise(transform.apply({ ...current, allowed_envs: [...allowedKeys] })));
    return {
      verdict: 'contradicted',
      current: how,
      computed,
      detail:
        `the backend writes compose as ${how.serialisation} (${how.transform}): that reproduces the CVM's current hash, ` +
        `but the current compose with allowed_envs=[${allowedKeys.join(',')}] hashes to ${computed}, not the requested value`,
    };
  }
  return {
    verdict: 'unexplained',
    detail:
      `no known serialisation (${COMPOSE_SERIALISATIONS.map((s) => s.name).join(', ')}) reproduces the requested hash` +
      (input.currentHash ? " nor the CVM's current one" : '') +
      ` from the served compose with allowed_envs=[${allowedKeys.join(',')}]`,
  };
}
