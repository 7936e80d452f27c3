/**
 * The simulator's workspace: KMSes, apps, CVMs, their pending compose hashes and operations.
 *
 * It lives in one JSON file, rewritten atomically (temp file + rename) after every change, so a
 * simulator killed at any point restarts with either the old or the new state, never a torn one.
 * The file holds the simulated KMS and CVM private keys (mode 0600) but never a decrypted env
 * value: env payloads are kept encrypted and decrypted only when applied or inspected.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AppCompose } from './compose.ts';

export const STATE_SCHEMA = 1;

export type KmsKind = 'onchain' | 'phala';
export type KmsTypeWord = 'phala' | 'ethereum' | 'base' | 'legacy';

export interface KmsRecord {
  id: string;
  slug: string;
  kind: KmsKind;
  /** What CVMs of this KMS report as `kms_type`. */
  kmsType: KmsTypeWord;
  url: string;
  version: string;
  chainId: number | null;
  contractAddress: string | null;
  gatewayAppId: string | null;
  k256PrivateKey: string;
  envKeyRoot: string;
}

export interface AppRecord {
  name: string;
  /** 40 lowercase hex chars, no 0x: the form the API uses. */
  appId: string;
  kmsId: string;
  /** Contract owner for on-chain apps, as the stack deployed it. */
  owner: string | null;
  ownerIsSigner: boolean;
}

export interface OperationEvent {
  event_type: string;
  timestamp: string;
  state: string;
}

export interface OperationRecord {
  correlationId: string;
  operationType: string;
  targetState: string;
  startedAt: string;
  completedAt: string | null;
  status: 'in_progress' | 'completed' | 'failed';
  errorMessage: string | null;
  composeHash: string | null;
  events: OperationEvent[];
}

/** A phase-1 answer waiting for its phase 2. */
export interface PendingHash {
  composeHash: string;
  compose: AppCompose;
  /** The compose hash the CVM had when the 465 was issued: phase 2 fails if it moved. */
  baseComposeHash: string;
  createdAt: number;
  expiresAt: number;
}

/** An accepted update not yet applied. */
export interface InFlightUpdate {
  correlationId: string;
  target: string;
  startedAt: string;
  applyAt: number;
  encryptedEnv: string;
  compose: AppCompose;
  allowedEnvsChanged: boolean;
}

export interface CvmRecord {
  id: string;
  numericId: number;
  name: string;
  appId: string;
  vmUuid: string;
  instanceId: string;
  deviceId: string;
  envPrivateKey: string;
  envPublicKey: string;
  compose: AppCompose;
  status: string;
  createdAt: string;
  bootedAt: string;
  bootError: string | null;
  inFlight: InFlightUpdate | null;
  /** Phase-1 hashes awaiting phase 2, newest first (concurrent clients may each hold one). */
  pending: PendingHash[];
  applied: { encryptedEnv: string | null; correlationId: string | null; appliedAt: string | null };
  operations: OperationRecord[];
  /** Per-CVM behaviour overrides (tests that need a short TTL or delay on their own CVM). */
  overrides: { applyDelayMs?: number; pendingTtlMs?: number };
}

export interface WorkspaceData {
  schema: number;
  workspace: { id: string; name: string; slug: string };
  user: { id: string; numericId: number; username: string; email: string };
  /** The one simulated TEE host; its device id is what a 465 reports as `device_id`. */
  node: { id: number; name: string; region: string; deviceId: string; version: string; osImageHash?: string };
  kms: KmsRecord[];
  apps: AppRecord[];
  cvms: CvmRecord[];
  nextNumericId: number;
}

export function emptyWorkspace(): WorkspaceData {
  return {
    schema: STATE_SCHEMA,
    workspace: { id: 'wks_sim0001', name: 'Simulator workspace', slug: 'simulator' },
    user: { id: 'usr_sim0001', numericId: 1, username: 'simulator', email: 'simulator@example.invalid' },
    node: { id: 1, name: 'sim-node-1', region: 'sim-local', deviceId: randomBytes(32).toString('hex'), version: '0.5.4' },
    kms: [],
    apps: [],
    cvms: [],
    nextNumericId: 1001,
  };
}

const UUID_DASHLESS = (s: string) => s.replace(/-/g, '').toLowerCase();

/** How long a change waits for others to be written with it. */
const SAVE_COALESCE_MS = 100;

export class Workspace {
  readonly path: string;
  data: WorkspaceData;
  #pending: NodeJS.Timeout | undefined;

  private constructor(path: string, data: WorkspaceData) {
    this.path = path;
    this.data = data;
  }

  /** Loads the state file, or starts empty when there is none. A corrupt file is an error, not a reset. */
  static open(path: string): Workspace {
    if (!existsSync(path)) return new Workspace(path, emptyWorkspace());
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      throw new Error(`simulator state file ${path} is not valid JSON; move it away to start from a fresh seed`);
    }
    const data = parsed as WorkspaceData;
    if (typeof data !== 'object' || data === null || data.schema !== STATE_SCHEMA || !Array.isArray(data.cvms)) {
      throw new Error(`simulator state file ${path} has an unknown schema; move it away to start from a fresh seed`);
    }
    return new Workspace(path, data);
  }

  /**
   * Persists the state soon: changes within SAVE_COALESCE_MS are written once. Each write
   * serialises the whole world; written at every change, a 200-CVM fleet spent a quarter of
   * the simulator's CPU here (7 s of 26) and held its event loop while doing so. `flush`
   * (and the server's close) writes at once.
   */
  save(): void {
    if (this.#pending !== undefined) return;
    this.#pending = setTimeout(() => this.flush(), SAVE_COALESCE_MS);
  }

  /** Writes the state now, and cancels a write `save` scheduled. */
  flush(): void {
    clearTimeout(this.#pending);
    this.#pending = undefined;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.data, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }

  allocateNumericId(): number {
    return this.data.nextNumericId++;
  }

  kms(idOrSlug: string): KmsRecord | undefined {
    const key = idOrSlug.trim();
    return this.data.kms.find((k) => k.id === key || k.slug === key);
  }

  /**
   * A KMS named by id, slug, or the `kms_type` word the CLI sends (`base`, `ethereum`); a word
   * resolves only when exactly one KMS has that type, so it never picks one of several.
   */
  kmsByRef(ref: string): KmsRecord | undefined {
    const direct = this.kms(ref);
    if (direct) return direct;
    const word = ref.trim().toLowerCase();
    const typed = this.data.kms.filter((k) => k.kmsType === word);
    return typed.length === 1 ? typed[0] : undefined;
  }

  kmsOf(app: AppRecord): KmsRecord {
    const kms = this.data.kms.find((k) => k.id === app.kmsId);
    if (!kms) throw new Error(`app ${app.name} refers to an unknown KMS`);
    return kms;
  }

  app(appId: string): AppRecord | undefined {
    const norm = normaliseAppId(appId);
    return norm === null ? undefined : this.data.apps.find((a) => a.appId === norm);
  }

  appOf(cvm: CvmRecord): AppRecord {
    const app = this.app(cvm.appId);
    if (!app) throw new Error(`CVM ${cvm.id} refers to an unknown app`);
    return app;
  }

  /**
   * Resolves a CVM the ways the API accepts: hashed id, numeric id, name, VM UUID (with or
   * without dashes), `app_<app id>` and `instance_<instance id>` (or the bare 40-hex forms).
   */
  cvm(ref: string): CvmRecord | undefined {
    const r = ref.trim();
    if (r === '') return undefined;
    const cvms = this.data.cvms;
    const byId = cvms.find((c) => c.id === r || c.name === r || String(c.numericId) === r);
    if (byId) return byId;
    const dashless = UUID_DASHLESS(r);
    const byUuid = cvms.find((c) => UUID_DASHLESS(c.vmUuid) === dashless);
    if (byUuid) return byUuid;
    const hex = r
      .replace(/^(app_|instance_)/, '')
      .replace(/^0x/, '')
      .toLowerCase();
    if (/^[0-9a-f]{40}$/.test(hex)) {
      if (!r.startsWith('instance_')) {
        const byApp = cvms.find((c) => c.appId === hex);
        if (byApp) return byApp;
      }
      return cvms.find((c) => c.instanceId === hex);
    }
    return undefined;
  }

  cvmsOfApp(appId: string): CvmRecord[] {
    return this.data.cvms.filter((c) => c.appId === appId);
  }
}

/** 40-hex app id, lowercase, no 0x; null when the input is not one. */
export function normaliseAppId(input: string): string | null {
  const hex = input.trim().replace(/^app_/, '').replace(/^0x/i, '').toLowerCase();
  return /^[0-9a-f]{40}$/.test(hex) ? hex : null;
}
