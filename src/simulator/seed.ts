/**
 * The seed: which KMSes, apps and CVMs the workspace starts with. The stack writes it from the
 * apps it deployed; the simulator merges it into its state on every start, so a restart keeps
 * everything (ids, keys, applied envs, operations) and only adds what is missing or follows an
 * app contract that was redeployed at a new address.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getAddress } from 'viem';
import { newAppCompose } from './compose.ts';
import { deriveAppEnvKeyPair, newK256PrivateKey, randomHex } from './keys.ts';
import { normaliseAppId, type AppRecord, type CvmRecord, type KmsKind, type KmsRecord, type KmsTypeWord, type Workspace } from './state.ts';

export interface SeedApp {
  name: string;
  kms: KmsKind;
  /** Required for on-chain apps (the contract address); generated for Phala-KMS apps. */
  appId?: string;
  owner?: string | null;
  ownerIsSigner?: boolean;
}

export interface SeedCvm {
  name: string;
  /** Name of a seed app. */
  app: string;
  allowedEnvs?: string[];
}

export interface SeedConfig {
  /** Chain of the on-chain KMS; null when there is no chain (Phala KMS only). */
  chainId: number | null;
  /** The stack's signer: CVMs created later are marked ownerIsSigner when it owns their app. */
  signerAddress?: string;
  /**
   * The on-chain KMS. With `contractAddress` and `k256PrivateKey` from a real deployment (the
   * local stack's DstackKms), the simulator signs with the key the contract publishes; an
   * existing workspace is brought in line with them.
   */
  onchainKms?: { slug?: string; kmsType?: KmsTypeWord; contractAddress?: string; k256PrivateKey?: string };
  /** The OS image the simulated node boots (what the KMS's allowedOsImages must hold). */
  osImageHash?: string;
  apps: SeedApp[];
  cvms: SeedCvm[];
}

/** What the stack reports for each seeded CVM (ready line and stack.env). */
export interface SeededCvmInfo {
  id: string;
  name: string;
  appId: string;
  kms: KmsKind;
  ownerIsSigner: boolean;
}

export const PHALA_KMS_SLUG = 'phala-sim';
export const DEFAULT_ALLOWED_ENVS = ['APP_MODE'];

/**
 * The seed the local stack uses: the CVM kinds the issue asks for, over the deployed apps. A
 * stack started with other apps gets the CVMs whose apps it has, plus the Phala-KMS one.
 */
export function stackSeed(args: {
  chainId: number;
  apps: { name: string; appId: string; owner: string }[];
  signerAddress: string;
  kms?: { address: string; k256PrivateKey: string; osImageHash: string };
}): SeedConfig {
  const apps: SeedApp[] = [];
  for (const name of ['app-signer-1', 'app-foreign', 'app-signer-shared']) {
    const app = args.apps.find((a) => a.name === name);
    if (!app) continue;
    apps.push({
      name,
      kms: 'onchain',
      appId: app.appId,
      owner: app.owner,
      ownerIsSigner: app.owner.toLowerCase() === args.signerAddress.toLowerCase(),
    });
  }
  apps.push({ name: 'app-phala-1', kms: 'phala' });
  const cvms: SeedCvm[] = [
    { name: 'cvm-onchain-signer', app: 'app-signer-1' },
    { name: 'cvm-onchain-foreign', app: 'app-foreign' },
    { name: 'cvm-shared-a', app: 'app-signer-shared' },
    { name: 'cvm-shared-b', app: 'app-signer-shared' },
    { name: 'cvm-phala', app: 'app-phala-1' },
  ].filter((c) => apps.some((a) => a.name === c.app));
  return {
    chainId: args.chainId,
    signerAddress: args.signerAddress,
    apps,
    cvms,
    ...(args.kms
      ? { onchainKms: { contractAddress: args.kms.address, k256PrivateKey: args.kms.k256PrivateKey }, osImageHash: args.kms.osImageHash }
      : {}),
  };
}

export function readSeedFile(path: string): SeedConfig {
  const seed = JSON.parse(readFileSync(path, 'utf8')) as SeedConfig;
  if (!seed || !Array.isArray(seed.apps) || !Array.isArray(seed.cvms)) {
    throw new Error(`seed file ${path} must hold {chainId, apps[], cvms[]}`);
  }
  return seed;
}

function ensurePhalaKms(ws: Workspace): KmsRecord {
  let kms = ws.data.kms.find((k) => k.kind === 'phala');
  if (!kms) {
    kms = {
      id: `kms_${randomHex(4)}`,
      slug: PHALA_KMS_SLUG,
      kind: 'phala',
      kmsType: 'phala',
      url: 'https://kms.phala-sim.invalid',
      version: 'v0.5.4',
      chainId: null,
      contractAddress: null,
      gatewayAppId: null,
      k256PrivateKey: newK256PrivateKey(),
      envKeyRoot: randomHex(32),
    };
    ws.data.kms.push(kms);
  }
  return kms;
}

function ensureOnchainKms(ws: Workspace, seed: SeedConfig): KmsRecord | undefined {
  if (seed.chainId === null || seed.chainId === undefined) return undefined;
  const chainId = seed.chainId;
  const slug = seed.onchainKms?.slug ?? `sim-kms-${chainId}`;
  let kms = ws.data.kms.find((k) => k.kind === 'onchain' && k.chainId === chainId);
  if (!kms) {
    kms = {
      id: `kms_${randomHex(4)}`,
      slug,
      kind: 'onchain',
      kmsType: seed.onchainKms?.kmsType ?? (chainId === 8453 ? 'base' : 'ethereum'),
      url: `https://kms-${chainId}.phala-sim.invalid`,
      version: 'v0.5.4',
      chainId,
      // Without a deployed DstackKms (a bare simulator) a random address stands in for it.
      contractAddress: getAddress(seed.onchainKms?.contractAddress ?? `0x${'5d'.repeat(2)}${randomHex(18)}`),
      gatewayAppId: randomHex(20),
      k256PrivateKey: seed.onchainKms?.k256PrivateKey?.replace(/^0x/, '') ?? newK256PrivateKey(),
      envKeyRoot: randomHex(32),
    };
    ws.data.kms.push(kms);
  } else {
    if (seed.onchainKms?.contractAddress) kms.contractAddress = getAddress(seed.onchainKms.contractAddress);
    if (seed.onchainKms?.k256PrivateKey) kms.k256PrivateKey = seed.onchainKms.k256PrivateKey.replace(/^0x/, '');
  }
  return kms;
}

/** Adds or updates an app; returns it. On-chain apps that moved to a new address are re-keyed. */
export function upsertApp(ws: Workspace, spec: SeedApp, kms: KmsRecord): AppRecord {
  let app = ws.data.apps.find((a) => a.name === spec.name);
  const requested = spec.appId === undefined ? null : normaliseAppId(spec.appId);
  if (spec.appId !== undefined && requested === null) throw new Error(`seed app ${spec.name}: appId is not a 20-byte hex address`);
  if (!app) {
    const byId = requested === null ? undefined : ws.data.apps.find((a) => a.appId === requested);
    if (byId) return byId;
    app = {
      name: spec.name,
      appId: requested ?? randomHex(20),
      kmsId: kms.id,
      owner: spec.owner ?? null,
      ownerIsSigner: spec.ownerIsSigner ?? false,
    };
    ws.data.apps.push(app);
    return app;
  }
  app.owner = spec.owner ?? app.owner;
  app.ownerIsSigner = spec.ownerIsSigner ?? app.ownerIsSigner;
  if (requested !== null && requested !== app.appId) {
    // The chain was reset and the contract redeployed: follow it, and drop state tied to the old address.
    const old = app.appId;
    app.appId = requested;
    app.kmsId = kms.id;
    const keys = deriveAppEnvKeyPair(kms.envKeyRoot, requested);
    for (const cvm of ws.data.cvms.filter((c) => c.appId === old)) {
      cvm.appId = requested;
      cvm.envPrivateKey = keys.privateKey;
      cvm.envPublicKey = keys.publicKey;
      cvm.pending = [];
      cvm.inFlight = null;
      cvm.status = 'running';
      cvm.applied = { encryptedEnv: null, correlationId: null, appliedAt: null };
    }
  }
  return app;
}

export interface NewCvmSpec {
  name?: string;
  app: AppRecord;
  allowedEnvs?: readonly string[];
  /** Extra compose fields (tests of the hash check: non-ASCII, nulls, scripts a runner ignores). */
  composeExtra?: Record<string, unknown>;
  overrides?: CvmRecord['overrides'];
}

export function createCvm(ws: Workspace, spec: NewCvmSpec): CvmRecord {
  const kms = ws.kmsOf(spec.app);
  let id: string;
  do id = `cvm_${randomHex(4)}`;
  while (ws.data.cvms.some((c) => c.id === id));
  const name = spec.name ?? `sim-cvm-${id.slice(4)}`;
  if (ws.data.cvms.some((c) => c.name === name)) throw new Error(`a CVM named ${name} already exists`);
  const keys = deriveAppEnvKeyPair(kms.envKeyRoot, spec.app.appId);
  const now = new Date().toISOString();
  const sibling = ws.cvmsOfApp(spec.app.appId)[0];
  const cvm: CvmRecord = {
    id,
    numericId: ws.allocateNumericId(),
    name,
    appId: spec.app.appId,
    vmUuid: randomUUID(),
    instanceId: randomHex(20),
    deviceId: ws.data.node.deviceId,
    envPrivateKey: keys.privateKey,
    envPublicKey: keys.publicKey,
    // Replicas of an app boot the same compose, so they share its hash (and its on-chain registration).
    compose:
      sibling && !spec.allowedEnvs && !spec.composeExtra
        ? structuredClone(sibling.compose)
        : { ...newAppCompose(spec.app.name, spec.allowedEnvs ?? DEFAULT_ALLOWED_ENVS), ...(spec.composeExtra ?? {}) },
    status: 'running',
    createdAt: now,
    bootedAt: now,
    bootError: null,
    inFlight: null,
    pending: [],
    applied: { encryptedEnv: null, correlationId: null, appliedAt: null },
    operations: [],
    overrides: { ...(spec.overrides ?? {}) },
  };
  ws.data.cvms.push(cvm);
  return cvm;
}

/** Merges the seed into the workspace and returns the seeded CVMs in seed order. */
export function applySeed(ws: Workspace, seed: SeedConfig): SeededCvmInfo[] {
  const phala = ensurePhalaKms(ws);
  const onchain = ensureOnchainKms(ws, seed);
  if (seed.osImageHash) ws.data.node.osImageHash = seed.osImageHash;
  const appsByName = new Map<string, AppRecord>();
  for (const spec of seed.apps) {
    if (spec.kms === 'onchain') {
      if (!onchain) throw new Error(`seed app ${spec.name} uses on-chain KMS but the seed has no chainId`);
      if (spec.appId === undefined) throw new Error(`seed app ${spec.name} uses on-chain KMS and needs its contract address as appId`);
    }
    appsByName.set(spec.name, upsertApp(ws, spec, spec.kms === 'onchain' ? onchain! : phala));
  }
  return seed.cvms.map((spec) => {
    const app = appsByName.get(spec.app);
    if (!app) throw new Error(`seed CVM ${spec.name} refers to unknown app ${spec.app}`);
    const cvm =
      ws.data.cvms.find((c) => c.name === spec.name) ??
      createCvm(ws, { name: spec.name, app, ...(spec.allowedEnvs ? { allowedEnvs: spec.allowedEnvs } : {}) });
    return cvmIdentity(ws, cvm);
  });
}

/** How a CVM is named to the stack and to tests: the seeded list and the admin API share it. */
export function cvmIdentity(ws: Workspace, cvm: CvmRecord) {
  const app = ws.appOf(cvm);
  return {
    id: cvm.id,
    name: cvm.name,
    appId: getAddress(`0x${cvm.appId}`),
    kms: ws.kmsOf(app).kind,
    ownerIsSigner: app.ownerIsSigner,
  };
}
