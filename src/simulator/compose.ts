/**
 * The CVM's `app-compose.json`: the document whose exact bytes the CVM measures and whose sha256
 * is the compose hash registered on chain. The simulator owns the bytes, so it decides the
 * serialisation (a setting, since the real writer is not public) and hashes what it serves.
 */
import { createHash } from 'node:crypto';
import { canonicalComposeJson } from '../phala/compose-hash.ts';
import { sdkPreprocess } from '../phala/compose-hash-check.ts';
import { serialisationByName } from '../phala/compose-serialisations.ts';
import type { ComposeSerialization } from './config.ts';

export type AppCompose = Record<string, unknown>;

const DEFAULT_DOCKER_COMPOSE = `services:
  app:
    image: nginx:1.27-alpine
    ports:
      - "80:80"
    environment:
      - APP_MODE=\${APP_MODE}
`;

/** An AppComposeV2 document as the dashboard creates it for a docker-compose app. */
export function newAppCompose(name: string, allowedEnvs: readonly string[], kmsEnabled = true): AppCompose {
  return {
    allowed_envs: [...allowedEnvs],
    docker_compose_file: DEFAULT_DOCKER_COMPOSE,
    features: ['kms', 'tproxy-net'],
    gateway_enabled: true,
    kms_enabled: kmsEnabled,
    local_key_provider_enabled: false,
    manifest_version: 2,
    name,
    no_instance_id: false,
    public_logs: true,
    public_sysinfo: true,
    public_tcbinfo: true,
    runner: 'docker-compose',
    secure_time: false,
    storage_fs: 'zfs',
    tproxy_enabled: true,
  };
}

function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortDeep((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** The bytes of app-compose.json as this simulator writes them. */
export function serializeCompose(compose: AppCompose, mode: ComposeSerialization): string {
  if (mode === 'compact') return canonicalComposeJson(compose);
  // The @phala/cloud getHash() layout: sorted keys, 4-space indent, no space after the colon.
  if (mode === 'indented') return JSON.stringify(sortDeep(compose), null, 4).replace(/": /g, '":');
  const [name, transform] = mode.split('+');
  const writer = serialisationByName(name!);
  if (!writer) throw new Error(`unknown compose serialisation ${mode}`);
  let doc = compose;
  if (transform === 'preprocessed') doc = sdkPreprocess(compose);
  else if (transform === 'nulls-dropped') doc = Object.fromEntries(Object.entries(compose).filter(([, v]) => v !== null));
  return writer.serialise(doc);
}

/** The document GET /cvms/{id}/compose_file serves: the whole compose, whatever the file leaves out. */
export function servedCompose(compose: AppCompose, mode: ComposeSerialization): AppCompose {
  if (mode.includes('+')) return structuredClone(compose);
  return JSON.parse(serializeCompose(compose, mode)) as AppCompose;
}

/** sha256 of the served bytes, lowercase hex without 0x. */
export function composeHash(compose: AppCompose, mode: ComposeSerialization): string {
  return createHash('sha256').update(serializeCompose(compose, mode), 'utf8').digest('hex');
}

export function allowedEnvsOf(compose: AppCompose): string[] {
  const v = compose.allowed_envs;
  return Array.isArray(v) ? v.filter((k): k is string => typeof k === 'string') : [];
}

export function withAllowedEnvs(compose: AppCompose, allowedEnvs: readonly string[]): AppCompose {
  return { ...structuredClone(compose), allowed_envs: [...allowedEnvs] };
}

/** Set equality: reordering env_keys is not a change of what the guest lets through. */
export function sameKeySet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size !== sb.size) return false;
  for (const k of sa) if (!sb.has(k)) return false;
  return true;
}
