/**
 * Behaviour knobs of the simulator. Every place where the real service's behaviour is not
 * public is a setting here rather than a constant, so a test can pin down what our client must
 * tolerate instead of relying on one guess.
 */
import { COMPOSE_SERIALISATION_NAMES } from '../phala/compose-serialisations.ts';
import type { ErrorEnvelope } from './errors.ts';
import type { FaultConfigInput } from './faults.ts';

export const API_VERSIONS = ['2025-10-28', '2026-01-21', '2026-05-22', '2026-06-23'] as const;

/** From this version `/kms` and `/kms/{id}` describe KMS contracts rather than nodes. */
export function kmsIsContractCentric(version: ApiVersion): boolean {
  return version >= '2026-06-23';
}
export type ApiVersion = (typeof API_VERSIONS)[number];

/**
 * How the simulator writes `app-compose.json` (and so what `compose_hash` hashes): one of the
 * known writers of src/phala/compose-serialisations.ts (`dstack-js`, `phala-cloud`, the
 * `python…` json.dumps variants), optionally followed by `+preprocessed` (the file is written
 * after @phala/cloud's preprocessAppCompose, while compose_file still serves the full document)
 * or `+nulls-dropped` (fields set to null are left out of the file). Aliases kept from before:
 * `compact` = `dstack-js`, `indented` = sorted 4-space indent without preprocessing.
 */
export type ComposeSerialization = string;

const COMPOSE_TRANSFORM_SUFFIXES = ['', '+preprocessed', '+nulls-dropped'];

export function isComposeSerialization(value: unknown): value is ComposeSerialization {
  if (typeof value !== 'string') return false;
  if (value === 'compact' || value === 'indented') return true;
  return COMPOSE_SERIALISATION_NAMES.some((n) => COMPOSE_TRANSFORM_SUFFIXES.some((t) => value === `${n}${t}`));
}

/**
 * Body of GET /kms/{kms}/pubkey/{app_id}:
 * - legacy: `{public_key, signature}` — the only shape @phala/cloud (strict schema) accepts;
 * - timestamped: adds `timestamp` and `signature_v1` (the KMS's replay-protected variant).
 */
export type PubkeyResponseShape = 'legacy' | 'timestamped';

export interface BehaviourConfig {
  /** Delay between a 202 and the CVM running with the new env. */
  applyDelayMs: number;
  /** How long a phase-1 compose hash stays valid for phase 2. */
  pendingTtlMs: number;
  composeSerialization: ComposeSerialization;
  errorEnvelope: ErrorEnvelope;
  pubkeyResponse: PubkeyResponseShape;
  /** Used when a request carries no X-Phala-Version header. */
  defaultApiVersion: ApiVersion;
  /** Blocks (including the receipt's own) a registration tx needs before phase 2 accepts it. */
  requiredConfirmations: number;
  /**
   * true: phase 2 rejects (467) a transaction not addressed to the app contract itself.
   * false (default): a registration relayed through another contract (a Safe's execTransaction,
   * a timelock) is accepted when its receipt holds the app's ComposeHashAdded(hash) and the app
   * allows the hash now. The real API's rule is not public; the chain's truth is the event and
   * the allow-list, and Phala's docs send Safe owners to register from their Safe.
   */
  txMustTargetApp: boolean;
  /**
   * Fault: the compose a 465 asks to register also flips `public_logs`, a change nobody asked
   * for (what a backend bug, or a compromised API, would look like to the hash check).
   */
  composeDrift: boolean;
  /**
   * When an update applies (the CVM restarts), ask the chain what the KMS asks at boot: app
   * registered, OS image and compose hash allowed now, device allowed. False skips it.
   */
  bootChecks: boolean;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: number;
}

export const DEFAULT_BEHAVIOUR: BehaviourConfig = {
  applyDelayMs: 1500,
  pendingTtlMs: 30 * 60 * 1000,
  composeSerialization: 'compact',
  errorEnvelope: 'top-level',
  pubkeyResponse: 'legacy',
  defaultApiVersion: '2025-10-28',
  requiredConfirmations: 1,
  txMustTargetApp: false,
  composeDrift: false,
  bootChecks: true,
  maxBodyBytes: 4 * 1024 * 1024,
};

export interface SimulatorOptions {
  /** Persistent workspace file; written atomically after every change. */
  statePath: string;
  /** Seed applied on start (missing apps/CVMs are added, existing ones kept). */
  seedPath?: string;
  host?: string;
  /** 0 or absent: an ephemeral port. */
  port?: number;
  apiKey: string;
  adminToken: string;
  /** JSON-RPC endpoint of the chain the on-chain KMS lives on. */
  rpcUrl?: string;
  behaviour?: Partial<BehaviourConfig>;
  faults?: FaultConfigInput;
  log?: (line: string) => void;
}

export class SettingError extends Error {
  override readonly name = 'SettingError';
}

function intSetting(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new SettingError(`${name} must be an integer in [${min}, ${max}]`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, options: readonly T[]): T {
  if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) {
    throw new SettingError(`${name} must be one of ${options.join(', ')}`);
  }
  return value as T;
}

/** Validates a partial behaviour update (start options, env, or POST /_sim/config). */
export function mergeBehaviour(base: BehaviourConfig, patch: Record<string, unknown>): BehaviourConfig {
  const out = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    switch (key) {
      case 'applyDelayMs':
        out.applyDelayMs = intSetting(key, value, 0, 3_600_000);
        break;
      case 'pendingTtlMs':
        out.pendingTtlMs = intSetting(key, value, 0, 30 * 24 * 3_600_000);
        break;
      case 'composeSerialization':
        if (!isComposeSerialization(value)) {
          throw new SettingError(
            `${key} must be compact, indented, or one of ${COMPOSE_SERIALISATION_NAMES.join(', ')} optionally with +preprocessed or +nulls-dropped`,
          );
        }
        out.composeSerialization = value;
        break;
      case 'composeDrift':
        if (typeof value !== 'boolean') throw new SettingError(`${key} must be a boolean`);
        out.composeDrift = value;
        break;
      case 'bootChecks':
        if (typeof value !== 'boolean') throw new SettingError(`${key} must be a boolean`);
        out.bootChecks = value;
        break;
      case 'errorEnvelope':
        out.errorEnvelope = oneOf(key, value, ['top-level', 'detail'] as const);
        break;
      case 'pubkeyResponse':
        out.pubkeyResponse = oneOf(key, value, ['legacy', 'timestamped'] as const);
        break;
      case 'defaultApiVersion':
        out.defaultApiVersion = oneOf(key, value, API_VERSIONS);
        break;
      case 'requiredConfirmations':
        out.requiredConfirmations = intSetting(key, value, 0, 1000);
        break;
      case 'txMustTargetApp':
        if (typeof value !== 'boolean') throw new SettingError(`${key} must be a boolean`);
        out.txMustTargetApp = value;
        break;
      case 'maxBodyBytes':
        out.maxBodyBytes = intSetting(key, value, 1024, 64 * 1024 * 1024);
        break;
      default:
        throw new SettingError(`unknown simulator setting "${key}"`);
    }
  }
  return out;
}

/** SIM_* environment variables understood by `npm run sim` and the stack service. */
export function behaviourFromEnv(env: NodeJS.ProcessEnv): Partial<BehaviourConfig> {
  const patch: Record<string, unknown> = {};
  const num = (name: string, key: keyof BehaviourConfig) => {
    const raw = env[name];
    if (raw !== undefined && raw !== '') patch[key] = Number(raw);
  };
  const str = (name: string, key: keyof BehaviourConfig) => {
    const raw = env[name];
    if (raw !== undefined && raw !== '') patch[key] = raw;
  };
  num('SIM_APPLY_DELAY_MS', 'applyDelayMs');
  num('SIM_PENDING_TTL_MS', 'pendingTtlMs');
  str('SIM_COMPOSE_SERIALIZATION', 'composeSerialization');
  str('SIM_ERROR_ENVELOPE', 'errorEnvelope');
  str('SIM_PUBKEY_RESPONSE', 'pubkeyResponse');
  str('SIM_DEFAULT_API_VERSION', 'defaultApiVersion');
  num('SIM_REQUIRED_CONFIRMATIONS', 'requiredConfirmations');
  const direct = env.SIM_TX_MUST_TARGET_APP;
  if (direct !== undefined && direct !== '') patch.txMustTargetApp = direct === 'true' || direct === '1';
  // Validated here so a typo fails at start, not at the first request.
  return mergeBehaviour(DEFAULT_BEHAVIOUR, patch) && (patch as Partial<BehaviourConfig>);
}
