/**
 * Wire shapes of the simulator's answers, per API version. Shapes follow the OpenAPI subset and
 * the official SDK's schemas for that version; fields the simulator has no meaningful value for
 * carry the backend's "unset" form (null), never an invented one, except where the SDK requires
 * a value.
 */
import { createHash } from 'node:crypto';
import { getAddress } from 'viem';
import { composeHash, type AppCompose } from './compose.ts';
import type { ApiVersion, ComposeSerialization } from './config.ts';
import { k256PublicKey } from './keys.ts';
import type { CvmRecord, KmsRecord, OperationRecord, Workspace } from './state.ts';

export interface ViewContext {
  ws: Workspace;
  rpcUrl: string | null;
  composeSerialization: ComposeSerialization;
  now: number;
}

export const GATEWAY_DOMAIN = 'dstack-sim.phala.invalid';

export function renderKmsInfo(kms: KmsRecord): Record<string, unknown> {
  return {
    id: kms.id,
    slug: kms.slug,
    url: kms.url,
    version: kms.version,
    chain_id: kms.chainId,
    kms_contract_address: kms.contractAddress,
    gateway_app_id: kms.gatewayAppId,
    k256_pubkey: k256PublicKey(kms.k256PrivateKey),
  };
}

/**
 * A KMS contract as API 2026-06-23 lists it. The simulator runs one node per contract; the
 * off-chain KMS is the sentinel contract "phala" on chain 0.
 */
export function renderKmsContract(kms: KmsRecord): Record<string, unknown> {
  return {
    id: kms.id,
    slug: kms.slug,
    label: kms.slug,
    contract_address: kms.contractAddress ?? 'phala',
    chain_id: kms.chainId ?? 0,
    k256_pubkey: k256PublicKey(kms.k256PrivateKey),
    ca_pubkey: null,
    node_count: 1,
  };
}

/** A node under a KMS contract (GET /kms/{slug}/nodes, API 2026-06-23). */
export function renderKmsNode(kms: KmsRecord): Record<string, unknown> {
  return { id: kms.id, slug: kms.slug, url: kms.url, version: kms.version, kms_type: kms.kmsType };
}

export function cvmComposeHash(cvm: CvmRecord, mode: ComposeSerialization): string {
  return composeHash(cvm.compose, mode);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function uptime(cvm: CvmRecord, now: number): string {
  if (cvm.status !== 'running') return '';
  let s = Math.max(0, Math.floor((now - Date.parse(cvm.bootedAt)) / 1000));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', `${s}s`].filter(Boolean).join(' ');
}

function endpoints(cvm: CvmRecord): { app: string; instance: string }[] {
  return [{ app: `https://${cvm.appId}-80.${GATEWAY_DOMAIN}`, instance: `https://${cvm.instanceId}-80.${GATEWAY_DOMAIN}` }];
}

function cvmKmsInfo(ctx: ViewContext, cvm: CvmRecord, kms: KmsRecord, owner: string | null): Record<string, unknown> {
  if (kms.kind === 'phala') {
    return {
      chain_id: null,
      dstack_kms_address: null,
      dstack_app_address: null,
      deployer_address: null,
      rpc_endpoint: null,
      encrypted_env_pubkey: cvm.envPublicKey,
    };
  }
  return {
    chain_id: kms.chainId,
    dstack_kms_address: kms.contractAddress,
    dstack_app_address: getAddress(`0x${cvm.appId}`),
    deployer_address: owner === null ? null : getAddress(owner),
    rpc_endpoint: ctx.rpcUrl,
    // On-chain KMS: the key comes from GET /kms/{kms}/pubkey/{app_id}, signed by the KMS.
    encrypted_env_pubkey: null,
    k256_pubkey: k256PublicKey(kms.k256PrivateKey),
  };
}

/** GET /cvms/{id}. */
export function renderCvmDetail(ctx: ViewContext, cvm: CvmRecord, version: ApiVersion): Record<string, unknown> {
  const app = ctx.ws.appOf(cvm);
  const kms = ctx.ws.kmsOf(app);
  const node = ctx.ws.data.node;
  const compose = cvm.compose;
  if (version === '2025-10-28') {
    return {
      id: cvm.numericId,
      name: cvm.name,
      status: cvm.status,
      in_progress: cvm.inFlight !== null,
      teepod_id: node.id,
      teepod: { id: node.id, name: node.name, region_identifier: node.region },
      app_id: cvm.appId,
      vm_uuid: cvm.vmUuid,
      instance_id: cvm.instanceId,
      vcpu: 1,
      memory: 2048,
      disk_size: 20,
      base_image: `dstack-${node.version}`,
      encrypted_env_pubkey: kms.kind === 'phala' ? cvm.envPublicKey : null,
      listed: false,
      project_id: null,
      project_type: null,
      instance_type: 'tdx.small',
      public_sysinfo: compose.public_sysinfo === true,
      public_logs: compose.public_logs === true,
      dapp_dashboard_url: null,
      syslog_endpoint: null,
      kms_info: renderKmsInfo(kms),
      contract_address: kms.kind === 'onchain' ? getAddress(`0x${cvm.appId}`) : null,
      deployer_address: app.owner === null ? null : getAddress(app.owner),
      scheduled_delete_at: null,
      public_urls: endpoints(cvm),
      gateway_domain: GATEWAY_DOMAIN,
      machine_info: { vcpu: 1, memory: 2048, disk_size: 20, gpu_count: 0 },
      updated_at: cvm.applied.appliedAt ?? cvm.createdAt,
    };
  }
  const dockerCompose = typeof compose.docker_compose_file === 'string' ? compose.docker_compose_file : null;
  const preLaunch = typeof compose.pre_launch_script === 'string' && compose.pre_launch_script !== '' ? compose.pre_launch_script : null;
  return {
    id: cvm.id,
    name: cvm.name,
    app_id: cvm.appId,
    vm_uuid: cvm.vmUuid,
    instance_id: cvm.instanceId,
    resource: {
      instance_type: 'tdx.small',
      vcpu: 1,
      memory_in_gb: 2,
      disk_in_gb: 20,
      gpus: 0,
      compute_billing_price: '0.058000',
      billing_period: 'hourly',
    },
    node_info: {
      object_type: 'node',
      id: node.id,
      node_id: node.id,
      name: node.name,
      region: node.region,
      device_id: node.deviceId,
      ppid: null,
      status: 'ONLINE',
      version: node.version,
    },
    os: {
      name: `dstack-${node.version}`,
      version: node.version,
      is_dev: false,
      os_image_hash: node.osImageHash?.replace(/^0x/, '') ?? null,
    },
    kms_type: kms.kmsType,
    kms_info: cvmKmsInfo(ctx, cvm, kms, app.owner),
    status: cvm.status,
    in_progress: cvm.inFlight !== null,
    progress: cvm.inFlight
      ? { target: cvm.inFlight.target, started_at: cvm.inFlight.startedAt, correlation_id: cvm.inFlight.correlationId }
      : null,
    compose_hash: composeHash(compose, ctx.composeSerialization),
    docker_compose_hash: dockerCompose === null ? null : sha256Hex(dockerCompose),
    pre_launch_script_hash: preLaunch === null ? null : sha256Hex(preLaunch),
    gateway: { base_domain: GATEWAY_DOMAIN, cname: null },
    logs: {
      serial: `https://${cvm.appId}-8090.${GATEWAY_DOMAIN}/logs/serial`,
      stdout: `https://${cvm.appId}-8090.${GATEWAY_DOMAIN}/logs/stdout`,
      stderr: `https://${cvm.appId}-8090.${GATEWAY_DOMAIN}/logs/stderr`,
      container_log_base: null,
    },
    services: [],
    endpoints: endpoints(cvm),
    public_logs: compose.public_logs === true,
    public_sysinfo: compose.public_sysinfo === true,
    public_tcbinfo: compose.public_tcbinfo !== false,
    gateway_enabled: compose.gateway_enabled !== false,
    secure_time: compose.secure_time === true,
    storage_fs: typeof compose.storage_fs === 'string' ? compose.storage_fs : 'zfs',
    workspace: { object_type: 'workspace', ...ctx.ws.data.workspace, avatar_url: null },
    creator: { object_type: 'user', id: ctx.ws.data.user.id, username: ctx.ws.data.user.username, avatar_url: null },
    created_at: cvm.createdAt,
    deleted_at: null,
    listed: false,
    project_type: null,
    compose_file: structuredClone(compose) as AppCompose,
  };
}

/** GET /cvms/{id}/state without `target`. Optional fields are omitted, not null (SDK schema). */
export function renderCvmState(ctx: ViewContext, cvm: CvmRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: cvm.id,
    instance_id: cvm.instanceId,
    name: cvm.name,
    status: cvm.status,
    in_progress: cvm.inFlight !== null,
  };
  if (cvm.status === 'running') {
    out.uptime = uptime(cvm, ctx.now);
    out.boot_progress = 'done';
  } else if (cvm.inFlight) {
    out.boot_progress = 'booting';
  }
  if (cvm.bootError) out.boot_error = cvm.bootError;
  if (cvm.inFlight) out.correlation_id = cvm.inFlight.correlationId;
  return out;
}

/**
 * One value of POST /status/batch. From 2026-06-23 the operation is one `operation` object (as
 * @phala/cloud's CvmStatusSchema models it); older versions get the flat fields.
 */
export function renderCvmStatus(ctx: ViewContext, cvm: CvmRecord, vmUuidKey: string, version: ApiVersion): Record<string, unknown> {
  const op = cvm.inFlight ? cvm.operations.find((o) => o.correlationId === cvm.inFlight!.correlationId) : undefined;
  const base = {
    vm_uuid: vmUuidKey,
    status: cvm.status,
    uptime: cvm.status === 'running' ? uptime(cvm, ctx.now) : null,
    in_progress: cvm.inFlight !== null,
    boot_progress: cvm.status === 'running' ? 'done' : cvm.inFlight ? 'booting' : null,
    boot_error: cvm.bootError,
    shutdown_progress: null,
    events: [],
  };
  if (version >= '2026-06-23') {
    return {
      ...base,
      operation: cvm.inFlight
        ? {
            type: op?.operationType ?? null,
            phase: 'applying',
            started_at: op?.startedAt ?? null,
            correlation_id: cvm.inFlight.correlationId,
          }
        : null,
    };
  }
  return {
    vm_uuid: vmUuidKey,
    status: cvm.status,
    uptime: cvm.status === 'running' ? uptime(cvm, ctx.now) : null,
    in_progress: cvm.inFlight !== null,
    boot_progress: cvm.status === 'running' ? 'done' : cvm.inFlight ? 'booting' : null,
    boot_error: cvm.bootError,
    shutdown_progress: null,
    events: [],
    operation_type: op?.operationType ?? null,
    operation_started_at: op?.startedAt ?? null,
    correlation_id: cvm.inFlight?.correlationId ?? null,
  };
}

export function renderOperation(ctx: ViewContext, cvm: CvmRecord, op: OperationRecord): Record<string, unknown> {
  const user = ctx.ws.data.user;
  const duration = op.completedAt === null ? null : Date.parse(op.completedAt) - Date.parse(op.startedAt);
  return {
    correlation_id: op.correlationId,
    operation_type: op.operationType,
    target_state: op.targetState,
    triggered_by: user.numericId,
    triggered_by_username: user.username,
    triggered_by_email: user.email,
    started_at: op.startedAt,
    completed_at: op.completedAt,
    duration_ms: duration,
    status: op.status,
    error_message: op.errorMessage,
    sub_operations: [op.operationType],
    events: op.events,
    instance_name: cvm.name,
    compose_hash: op.composeHash,
  };
}
