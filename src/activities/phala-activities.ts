import { heartbeat, log, sleep, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/activity';
import type { PhalaCloudClient } from '../phala/api-client.ts';
import { PhalaApiError } from '../phala/api-errors.ts';
import { assessRequestedComposeHash } from '../phala/compose-hash-check.ts';
import { encryptEnvVars } from '../phala/env-crypto.ts';
import { ENV_KEY_PATTERN, EnvValidationError, validateEnvVars } from '../phala/env-validation.ts';
import { checkEnvEncryptPublicKey } from '../phala/kms-signature.ts';
import type { ComposeHashPolicy, EnvVar } from '../workflows/definitions.ts';
import { apiFailure, invalidInput } from './failures.ts';
import { readSealedEnvHere, sealEnvelope } from './sealed-env-reader.ts';
import type { SealedEnvRef } from '../workflows/sealed-env.ts';
import type {
  ApplyObservation,
  ComposeHashCheck,
  CvmTarget,
  EncryptionKey,
  SubmitEnvInput,
  SubmitEnvOutcome,
  ValidatedInput,
} from './types.ts';

export interface PhalaActivityDeps {
  phala: PhalaCloudClient;
  /** The longest pause between two polls of the apply watcher (it starts shorter: see applyPollDelayMs). */
  pollIntervalMs?: number;
  /** Oldest KMS signature on an env-encryption key that is still trusted. */
  kmsSignatureMaxAgeSeconds?: number;
  /** Reads a sealed env back from the run's history; by default through the worker's client. */
  readSealedEnv?: (ref: SealedEnvRef) => Promise<string>;
}

const ONCHAIN_KMS_TYPES = new Set(['ethereum', 'base']);

function normaliseAppId(appId: string): string {
  return /^(0x)?[0-9a-fA-F]{40}$/.test(appId) ? `0x${appId.replace(/^0x/, '').toLowerCase()}` : appId;
}

/** The first pauses of the apply watcher; the pause then grows with the time already waited. */
export const APPLY_POLL_MIN_MS = 150;
/** Pause as a share of the time waited so far: the time lost to polling stays under this share. */
export const APPLY_POLL_FRACTION = 1 / 8;

/**
 * The pause before the next apply poll, `elapsedMs` after the watcher started: short at first
 * (an apply often lands within a second or two, and a fixed 1 s tick lost ~0.5 s of it on
 * average), then a fixed share of the time waited, capped at `maxMs`. A long apply costs about
 * as many requests as fixed `maxMs` polling plus a few dozen early ones.
 */
export function applyPollDelayMs(elapsedMs: number, maxMs: number): number {
  const min = Math.min(APPLY_POLL_MIN_MS, maxMs);
  return Math.round(Math.min(maxMs, Math.max(min, elapsedMs * APPLY_POLL_FRACTION)));
}

function toEnvList(env: unknown): EnvVar[] {
  if (Array.isArray(env)) return env as EnvVar[];
  if (env !== null && typeof env === 'object') {
    return Object.entries(env as Record<string, unknown>).map(([key, value]) => {
      if (typeof value !== 'string') throw invalidInput(`env.${ENV_KEY_PATTERN.test(key) ? key : '<invalid key>'} must be a string`);
      return { key, value };
    });
  }
  throw invalidInput('env must be an object of KEY: value or a list of {key, value}');
}

export function createPhalaActivities(deps: PhalaActivityDeps) {
  const { phala } = deps;
  const pollIntervalMs = deps.pollIntervalMs ?? 1000;
  // The workflow watches an apply in slices of one activity each; keeping when the watch of a
  // correlation id began lets a later slice go on at the long pause instead of starting short
  // again. In memory only: a slice on another worker just starts short once more.
  const watchStartedAt = new Map<string, number>();
  const watchStart = (correlationId: string, now: number): number => {
    for (const [id, at] of watchStartedAt) if (now - at > 3_600_000) watchStartedAt.delete(id);
    const at = watchStartedAt.get(correlationId) ?? now;
    watchStartedAt.set(correlationId, at);
    return at;
  };

  return {
    async validateInput(input: { env: unknown; allowedKeys?: unknown }): Promise<ValidatedInput> {
      const env = toEnvList(input.env);
      try {
        validateEnvVars(env);
      } catch (err) {
        if (err instanceof EnvValidationError) throw invalidInput(`env: ${err.message}`);
        throw err;
      }
      if (env.length === 0) throw invalidInput('env: at least one variable is required');
      let envKeys = env.map((e) => e.key);
      if (input.allowedKeys !== undefined) {
        if (!Array.isArray(input.allowedKeys) || input.allowedKeys.some((k) => typeof k !== 'string')) {
          throw invalidInput('allowedKeys must be a list of env names');
        }
        const allowed = input.allowedKeys as string[];
        const bad = allowed.filter((k) => !ENV_KEY_PATTERN.test(k));
        if (bad.length > 0)
          throw invalidInput(
            `allowedKeys: ${bad.length} name(s) are not valid env names (${bad.map((k) => JSON.stringify(k.slice(0, 32))).join(', ')})`,
          );
        // The guest silently drops keys outside allowed_envs: refuse instead of losing them.
        const missing = envKeys.filter((k) => !allowed.includes(k));
        if (missing.length > 0) throw invalidInput(`allowedKeys must include every env key; missing: ${missing.join(', ')}`);
        envKeys = [...new Set(allowed)];
      }
      return { env, envKeys };
    },

    /** A rollout's `targets: {appId}`: the ids of every CVM of the app, in the API's order. */
    async listAppCvms({ appId }: { appId: string }): Promise<{ cvmIds: string[] }> {
      if (typeof appId !== 'string' || !/^(0x)?[0-9a-fA-F]{40}$/.test(appId)) {
        throw invalidInput('targets.appId must be an app id: 40 hex characters, optionally 0x-prefixed');
      }
      const cvms = await phala.listAppCvms(appId).catch((err) => {
        throw apiFailure(err, `GET /apps/${appId}/cvms`);
      });
      return { cvmIds: cvms.map((c) => c.id) };
    },

    async resolveCvm({ cvmId }: { cvmId: string }): Promise<CvmTarget> {
      if (typeof cvmId !== 'string' || cvmId.trim() === '') throw invalidInput('cvmId is required');
      const cvm = await phala.getCvm(cvmId).catch((err) => {
        throw apiFailure(err, `GET /cvms/${cvmId}`);
      });
      const kmsType = cvm.kms_type ?? 'phala';
      const onchain = ONCHAIN_KMS_TYPES.has(kmsType);
      const appId = normaliseAppId(cvm.app_id ?? cvm.kms_info?.dstack_app_address ?? '');
      if (!appId) throw ApplicationFailure.nonRetryable(`CVM ${cvmId} has no app id`, 'ApiRejected');
      const target: CvmTarget = {
        cvmId: cvm.id,
        name: cvm.name,
        appId,
        kms: onchain ? 'onchain' : 'phala',
        kmsType,
        chainId: cvm.kms_info?.chain_id ?? undefined,
        encryptedEnvPubkey: cvm.kms_info?.encrypted_env_pubkey ?? undefined,
        composeHash: cvm.compose_hash ?? undefined,
      };
      if (onchain) {
        // The CVM names its KMS by contract address; the pubkey endpoint wants the KMS id or slug.
        const kmsAddress = cvm.kms_info?.dstack_kms_address?.toLowerCase();
        const list = await phala.listKms({ isOnchain: true }).catch((err) => {
          throw apiFailure(err, 'GET /kms');
        });
        const kms = list.items.find(
          (k) => k.kms_contract_address?.toLowerCase() === kmsAddress && (target.chainId === undefined || k.chain_id === target.chainId),
        );
        if (!kms) {
          throw ApplicationFailure.nonRetryable(
            `no KMS listed for contract ${kmsAddress ?? '(none)'} on chain ${target.chainId}`,
            'KmsNotFound',
          );
        }
        target.kmsId = kms.slug ?? kms.id;
        target.kmsPublicKey = kms.k256_pubkey ?? undefined;
        target.chainId ??= kms.chain_id ?? undefined;
      }
      return target;
    },

    async getEncryptionKey(target: CvmTarget): Promise<EncryptionKey> {
      if (target.kms === 'phala') {
        if (!target.encryptedEnvPubkey) {
          throw ApplicationFailure.nonRetryable(`CVM ${target.cvmId} exposes no env encryption key`, 'ApiRejected');
        }
        return { publicKey: target.encryptedEnvPubkey, source: 'cvm-record' };
      }
      const res = await phala.getAppEnvEncryptPubkey(target.kmsId!, target.appId).catch((err) => {
        throw apiFailure(err, `GET /kms/${target.kmsId}/pubkey/${target.appId}`);
      });
      if (!target.kmsPublicKey) {
        throw ApplicationFailure.nonRetryable(
          `KMS ${target.kmsId} publishes no k256_pubkey: the env key cannot be verified`,
          'KeyNotTrusted',
        );
      }
      // Prefer the timestamped signature: it cannot be replayed once it expires.
      const timestamped = res.signature_v1 && res.timestamp != null;
      const check = checkEnvEncryptPublicKey({
        publicKey: res.public_key,
        signature: timestamped ? res.signature_v1! : res.signature,
        appId: target.appId,
        kmsPublicKey: target.kmsPublicKey,
        timestamp: timestamped ? res.timestamp! : undefined,
        maxAgeSeconds: deps.kmsSignatureMaxAgeSeconds,
      });
      if (!check.ok) {
        // A fresh fetch may carry a fresh signature: retry a few times before an operator looks.
        throw ApplicationFailure.create({
          message: `the env encryption key for app ${target.appId} is not signed by KMS ${target.kmsId}: ${check.reason}`,
          type: 'KeyNotTrusted',
          nonRetryable: check.reason !== 'expired',
        });
      }
      return { publicKey: res.public_key, source: 'kms-signed' };
    },

    async encryptEnv({ env, publicKey }: { env: EnvVar[]; publicKey: string }): Promise<{ encryptedEnv: string }> {
      return { encryptedEnv: await encryptEnvVars(env, publicKey) };
    },

    /** The ciphertext as binary with its digest in front (workflows/sealed-env.ts): in history once. */
    async sealEnv({ env, publicKey }: { env: EnvVar[]; publicKey: string }): Promise<Uint8Array> {
      return sealEnvelope(Buffer.from(await encryptEnvVars(env, publicKey), 'hex'));
    },

    async submitEnvUpdate(input: SubmitEnvInput): Promise<SubmitEnvOutcome> {
      const phase = input.transactionHash ? 'phase 2' : 'phase 1';
      const encryptedEnv = input.sealedEnv ? await (deps.readSealedEnv ?? readSealedEnvHere)(input.sealedEnv) : input.encryptedEnv;
      if (!encryptedEnv) throw invalidInput(`${phase}: no encrypted env was given`);
      try {
        const res = await phala.updateCvmEnvs(
          {
            id: input.cvmId,
            encrypted_env: encryptedEnv,
            env_keys: input.envKeys,
            ...(input.composeHash ? { compose_hash: input.composeHash } : {}),
            ...(input.transactionHash ? { transaction_hash: input.transactionHash } : {}),
          },
          { requestId: input.requestId },
        );
        if (res.status === 'in_progress') {
          return { kind: 'in_progress', correlationId: res.correlation_id, allowedEnvsChanged: res.allowed_envs_changed };
        }
        return {
          kind: 'precondition_required',
          composeHash: res.compose_hash.replace(/^0x/, '').toLowerCase(),
          appId: normaliseAppId(res.app_id),
          deviceId: res.device_id || undefined,
          chainId: res.kms_info.chain_id ?? undefined,
          kmsId: res.kms_info.slug ?? res.kms_info.id,
        };
      } catch (err) {
        if (
          err instanceof PhalaApiError &&
          (err.kind === 'hash_expired' || err.kind === 'tx_not_verified' || err.kind === 'hash_not_allowed')
        ) {
          return { kind: err.kind, message: err.message };
        }
        throw apiFailure(err, `${phase} PATCH /cvms/${input.cvmId}/envs`);
      }
    },

    async checkComposeHash(input: {
      cvmId: string;
      envKeys: string[];
      expected: string;
      policy: ComposeHashPolicy;
    }): Promise<ComposeHashCheck> {
      const expected = input.expected.replace(/^0x/, '').toLowerCase();
      if (input.policy === 'off') return { policy: 'off', expected, matches: true, detail: 'not checked (policy off)' };
      const [compose, cvm] = await Promise.all([
        phala.getComposeFile(input.cvmId).catch((err) => {
          throw apiFailure(err, `GET /cvms/${input.cvmId}/compose_file`);
        }),
        phala.getCvm(input.cvmId).catch((err) => {
          throw apiFailure(err, `GET /cvms/${input.cvmId}`);
        }),
      ]);
      const assessment = assessRequestedComposeHash({
        current: compose as Record<string, unknown>,
        currentHash: cvm.compose_hash,
        allowedKeys: input.envKeys,
        requested: expected,
      });
      const verified = assessment.verdict === 'verified';
      if (!verified) {
        log.warn('compose hash not reproduced from the served compose', {
          cvmId: input.cvmId,
          expected,
          verdict: assessment.verdict,
          policy: input.policy,
        });
      }
      return {
        policy: input.policy,
        expected,
        ...(assessment.computed === undefined ? {} : { computed: assessment.computed }),
        // The workflow stops for an operator only when this is false under strict.
        matches: verified,
        detail: `${assessment.verdict}: ${assessment.detail}`,
      };
    },

    async observeApplied(input: { cvmId: string; correlationId: string; maxWaitMs: number }): Promise<ApplyObservation> {
      const deadline = Date.now() + input.maxWaitMs;
      const started = watchStart(input.correlationId, Date.now());
      const settled = (obs: ApplyObservation): ApplyObservation => {
        watchStartedAt.delete(input.correlationId);
        return obs;
      };
      let detail = 'not seen yet';
      for (;;) {
        const ops = await phala.getCvmOperations(input.cvmId, { limit: 20 }).catch((err) => {
          throw apiFailure(err, `GET /cvms/${input.cvmId}/operations`);
        });
        const op = ops.items.find((o) => o.correlation_id === input.correlationId);
        if (op) {
          const s = op.status.toLowerCase();
          if (['completed', 'succeeded', 'success', 'done'].includes(s)) return settled({ state: 'applied' });
          if (['failed', 'error', 'cancelled', 'canceled'].includes(s)) {
            return settled({ state: 'failed', message: op.error_message ?? `operation ${input.correlationId} ${op.status}` });
          }
          detail = `operation ${op.status}`;
        } else {
          // Some deployments keep no operation record: the CVM's own progress then tells.
          const cvm = await phala.getCvm(input.cvmId).catch((err) => {
            throw apiFailure(err, `GET /cvms/${input.cvmId}`);
          });
          if (!cvm.in_progress && cvm.progress?.correlation_id !== input.correlationId) return settled({ state: 'applied' });
          detail = `CVM ${cvm.status}${cvm.in_progress ? ' (in progress)' : ''}`;
        }
        heartbeat(detail);
        const pauseMs = applyPollDelayMs(Date.now() - started, pollIntervalMs);
        if (Date.now() + pauseMs > deadline) return { state: 'pending', detail };
        await sleep(pauseMs);
        if (Context.current().cancellationSignal.aborted) return { state: 'pending', detail };
      }
    },
  };
}
