/**
 * Zod schemas for the parts of the Phala Cloud API this service talks to.
 *
 * Source of truth: the backend's OpenAPI document (reference subset in
 * shared/reference) cross-checked against the official JS SDK (@phala/cloud).
 * These schemas are shared by the HTTP client and the simulator, so they
 * describe the wire format, not our convenience types.
 *
 * Conventions:
 * - Every object is loose: fields the backend adds later pass through instead
 *   of breaking a running workflow.
 * - A field is required only when the OpenAPI marks it required AND the
 *   official SDK requires it too; anything else is `nullish` because the
 *   backend (FastAPI/pydantic) emits `null` for unset optionals.
 * - Patterns such as `^cvm_.+` are documented in the OpenAPI but not enforced:
 *   we never branch on an id's shape and must not reject a valid answer.
 * - Defaults are used only where the OpenAPI declares one and no hash or
 *   signature is computed over the object (never on the compose file).
 */
import { z } from 'zod';

const nullishString = z.string().nullish();
const nullishInt = z.number().int().nullish();
const nullishBool = z.boolean().nullish();

/** API versions whose response shapes these schemas were checked against. */
export const SUPPORTED_API_VERSIONS = ['2026-01-21', '2026-05-22', '2026-06-23'] as const;
export type ApiVersion = (typeof SUPPORTED_API_VERSIONS)[number];

/**
 * From 2026-06-23 `/kms` and `/kms/{id}` describe KMS contracts, not nodes. The calls that need
 * a node (its id/slug for the pubkey endpoint, its k256 key) pin the last node-shaped version,
 * as @phala/cloud's getKmsInfo/getKmsList/getAppEnvEncryptPubKey do; the contract calls pin the
 * first contract-shaped one. Both hold whatever version the client is configured with.
 */
export const KMS_NODE_API_VERSION: ApiVersion = '2026-05-22';
export const KMS_CONTRACT_API_VERSION: ApiVersion = '2026-06-23';

/** `error_code` values of the compose-hash flow (module 01 of the backend). */
export const PHALA_ERROR_CODES = {
  HASH_REGISTRATION_REQUIRED: 'ERR-01-005',
  HASH_INVALID_OR_EXPIRED: 'ERR-01-006',
  TX_VERIFICATION_FAILED: 'ERR-01-007',
  HASH_NOT_ALLOWED: 'ERR-01-008',
} as const;

// ---------------------------------------------------------------------------
// KMS
// ---------------------------------------------------------------------------

export const KmsTypeSchema = z.enum(['phala', 'ethereum', 'base', 'legacy']);
export type KmsType = z.infer<typeof KmsTypeSchema>;

/**
 * KMSInfo: GET /kms/{kms_id}, items of GET /kms, and `kms_info` inside a 465.
 * `k256_pubkey` is absent from the OpenAPI subset but present in newer SDKs;
 * it is what the env-encrypt-pubkey signature must recover to.
 */
export const KmsInfoSchema = z.looseObject({
  id: z.string().min(1),
  slug: nullishString,
  url: z.string(),
  version: z.string(),
  chain_id: nullishInt,
  kms_contract_address: nullishString,
  gateway_app_id: nullishString,
  k256_pubkey: nullishString,
});
export type KmsInfo = z.infer<typeof KmsInfoSchema>;

/** GET /kms (paginated, node-centric shape served up to API 2026-05-22). */
export const KmsListResponseSchema = z.looseObject({
  items: z.array(KmsInfoSchema),
  total: z.number().nullish(),
  page: z.number().nullish(),
  page_size: z.number().nullish(),
  pages: z.number().nullish(),
});
export type KmsListResponse = z.infer<typeof KmsListResponseSchema>;

/**
 * A KMS contract (GET /kms, GET /kms/{slug} from API 2026-06-23): the replicas sharing one root
 * key. `contract_address` is the sentinel "phala" (chain_id 0) for Phala's off-chain KMS.
 */
export const KmsContractInfoSchema = z.looseObject({
  id: z.string().min(1),
  slug: nullishString,
  label: nullishString,
  contract_address: z.string(),
  chain_id: z.number().int(),
  k256_pubkey: nullishString,
  ca_pubkey: nullishString,
  node_count: z.number().int().nonnegative(),
});
export type KmsContractInfo = z.infer<typeof KmsContractInfoSchema>;

export const KmsContractListResponseSchema = z.looseObject({
  items: z.array(KmsContractInfoSchema),
  total: z.number().nullish(),
  page: z.number().nullish(),
  page_size: z.number().nullish(),
  pages: z.number().nullish(),
});
export type KmsContractListResponse = z.infer<typeof KmsContractListResponseSchema>;

/**
 * GET /kms/{kms}/pubkey/{app_id}. `timestamp` (unix seconds) appears with the
 * newer signature variant that binds the key to a point in time.
 */
export const AppEnvEncryptPubkeySchema = z.looseObject({
  public_key: z.string().min(1),
  /** Legacy signature: over app id and key only. */
  signature: z.string().min(1),
  /** Newer KMSs add a signature that also binds `timestamp`, so it can expire. */
  signature_v1: nullishString,
  timestamp: z.number().int().nonnegative().nullish(),
});
export type AppEnvEncryptPubkey = z.infer<typeof AppEnvEncryptPubkeySchema>;

// ---------------------------------------------------------------------------
// CVM detail (GET /cvms/{id}) — CVMInfoDetail, API 2026-01-21 and 2026-05-22
// (the SDK's V20260522 schema is the V20260121 one re-declared; same wire shape)
// ---------------------------------------------------------------------------

export const CvmKmsInfoSchema = z.looseObject({
  chain_id: nullishInt,
  dstack_kms_address: nullishString,
  dstack_app_address: nullishString,
  deployer_address: nullishString,
  rpc_endpoint: nullishString,
  encrypted_env_pubkey: nullishString,
});
export type CvmKmsInfo = z.infer<typeof CvmKmsInfoSchema>;

export const CvmProgressSchema = z.looseObject({
  target: nullishString,
  started_at: nullishString,
  correlation_id: nullishString,
});
export type CvmProgress = z.infer<typeof CvmProgressSchema>;

export const CvmResourceInfoSchema = z.looseObject({
  instance_type: nullishString,
  vcpu: nullishInt,
  memory_in_gb: z.number().nullish(),
  disk_in_gb: nullishInt,
  gpus: nullishInt,
  compute_billing_price: nullishString,
  billing_period: z.enum(['skip', 'hourly', 'monthly']).nullish(),
});

export const CvmGatewayInfoSchema = z.looseObject({
  base_domain: nullishString,
  cname: nullishString,
});

export const CvmOsInfoSchema = z.looseObject({
  name: nullishString,
  version: nullishString,
  is_dev: nullishBool,
  os_image_hash: nullishString,
});

export const CvmLogUrlsSchema = z.looseObject({
  serial: nullishString,
  stdout: nullishString,
  stderr: nullishString,
  container_log_base: nullishString,
});

export const NodeRefSchema = z.looseObject({
  object_type: z.literal('node').optional(),
  id: nullishInt,
  node_id: nullishInt,
  name: nullishString,
  region: nullishString,
  device_id: nullishString,
  ppid: nullishString,
  status: nullishString,
  version: nullishString,
});

export const WorkspaceRefSchema = z.looseObject({
  object_type: z.literal('workspace').optional(),
  id: z.string(),
  name: z.string(),
  slug: nullishString,
  avatar_url: nullishString,
});

export const UserRefSchema = z.looseObject({
  object_type: z.literal('user').optional(),
  id: nullishString,
  username: nullishString,
  avatar_url: nullishString,
});

export const CvmNetworkUrlsSchema = z.looseObject({
  app: z.string(),
  instance: z.string(),
});

export const CvmDetailSchema = z.looseObject({
  id: z.string().min(1),
  name: z.string(),
  app_id: nullishString,
  vm_uuid: nullishString,
  instance_id: nullishString,
  resource: CvmResourceInfoSchema,
  node_info: NodeRefSchema.nullish(),
  os: CvmOsInfoSchema.nullish(),
  kms_type: KmsTypeSchema.nullish(),
  kms_info: CvmKmsInfoSchema.nullish(),
  status: z.string(),
  in_progress: z.boolean().default(false),
  progress: CvmProgressSchema.nullish(),
  compose_hash: nullishString,
  docker_compose_hash: nullishString,
  pre_launch_script_hash: nullishString,
  gateway: CvmGatewayInfoSchema,
  logs: CvmLogUrlsSchema.nullish(),
  services: z.array(z.record(z.string(), z.unknown())).nullish(),
  endpoints: z.array(CvmNetworkUrlsSchema).nullish(),
  public_logs: nullishBool,
  public_sysinfo: nullishBool,
  public_tcbinfo: nullishBool,
  gateway_enabled: nullishBool,
  secure_time: nullishBool,
  storage_fs: nullishString,
  workspace: WorkspaceRefSchema.nullish(),
  creator: UserRefSchema.nullish(),
  created_at: nullishString,
  deleted_at: nullishString,
  listed: nullishBool,
  project_type: nullishString,
  compose_file: z.union([z.record(z.string(), z.unknown()), z.string()]).nullish(),
});
/**
 * GET /apps/{app_id}/cvms: the app's CVMs. Read loosely (only what a rollout needs to address
 * each CVM): the legacy version's numeric ids are kept as strings.
 */
export const AppCvmListSchema = z.array(
  z.looseObject({
    id: z.union([z.string().min(1), z.number().transform(String)]),
    name: nullishString,
    app_id: nullishString,
    vm_uuid: nullishString,
    status: nullishString,
  }),
);
export type AppCvmList = z.infer<typeof AppCvmListSchema>;

/** Parsed CVM detail (`in_progress` defaulted to false when absent). */
export type CvmDetail = z.infer<typeof CvmDetailSchema>;
/** What the backend may send: `in_progress` may be omitted. */
export type CvmDetailInput = z.input<typeof CvmDetailSchema>;

// ---------------------------------------------------------------------------
// Compose file (GET /cvms/{id}/compose_file) — AppComposeV2
// ---------------------------------------------------------------------------

/**
 * No defaults here on purpose: the compose hash is computed over this object,
 * and a default would invent keys the backend never wrote. `name` is required
 * by the OpenAPI but optional in the SDK's loose schema; we never read it, so
 * its absence must not fail a workflow.
 */
export const AppComposeSchema = z.looseObject({
  name: z.string().optional(),
  allowed_envs: z.array(z.string()).optional(),
  bash_script: nullishString,
  default_gateway_domain: nullishString,
  docker_compose_file: nullishString,
  init_script: nullishString,
  kms_enabled: z.boolean().optional(),
  local_key_provider_enabled: z.boolean().optional(),
  manifest_version: z.number().int().optional(),
  no_instance_id: z.boolean().optional(),
  pre_launch_script: nullishString,
  public_logs: z.boolean().optional(),
  public_sysinfo: z.boolean().optional(),
  public_tcbinfo: z.boolean().optional(),
  runner: z.string().optional(),
  gateway_enabled: z.boolean().optional(),
  features: z.array(z.string()).optional(),
  salt: nullishString,
  secure_time: z.boolean().optional(),
  storage_fs: z.enum(['ext4', 'zfs']).nullish(),
  tproxy_enabled: z.boolean().optional(),
});
export type AppCompose = z.infer<typeof AppComposeSchema>;

// ---------------------------------------------------------------------------
// PATCH /cvms/{id}/envs
// ---------------------------------------------------------------------------

/** Request body (Body_update_cvm_envs). Hashes are phase 2 only. */
export const UpdateCvmEnvsBodySchema = z.looseObject({
  encrypted_env: z.string(),
  env_keys: z.array(z.string()).nullish(),
  compose_hash: nullishString,
  transaction_hash: nullishString,
});
export type UpdateCvmEnvsBody = z.infer<typeof UpdateCvmEnvsBodySchema>;

/** 202 body. */
export const UpdateCvmEnvsAcceptedSchema = z.looseObject({
  status: z.literal('in_progress'),
  message: z.string(),
  correlation_id: z.string().min(1),
  allowed_envs_changed: z.boolean(),
});
export type UpdateCvmEnvsAccepted = z.infer<typeof UpdateCvmEnvsAcceptedSchema>;

/**
 * The 465 answer normalised the way the official SDK returns it. On the wire
 * these values travel as `details: [{field, value}]` of a structured error
 * (see StructuredErrorBodySchema); `device_id` defaults to '' as in the SDK.
 */
/**
 * `kms_info` of a 465. The structured form is held to KmsInfoSchema (as the JS SDK does); the
 * older flat form the Python SDK still reads may carry only the id, so url/version are optional
 * here and nothing downstream relies on them.
 */
export const PreconditionKmsInfoSchema = KmsInfoSchema.extend({
  url: z.string().optional(),
  version: z.string().optional(),
});
export type PreconditionKmsInfo = z.infer<typeof PreconditionKmsInfoSchema>;

export const PreconditionRequiredSchema = z.looseObject({
  status: z.literal('precondition_required'),
  message: z.string(),
  compose_hash: z.string().min(1),
  app_id: z.string().min(1),
  device_id: z.string(),
  kms_info: PreconditionKmsInfoSchema,
});
export type PreconditionRequired = z.infer<typeof PreconditionRequiredSchema>;

export type UpdateCvmEnvsResult = UpdateCvmEnvsAccepted | PreconditionRequired;

/** GET /apps/{app_id}/kms-info (AppKmsInfoResponse): who owns the app and how it signs. */
export const AppKmsInfoSchema = z.looseObject({
  is_onchain_kms: z.boolean().default(false),
  chain_id: nullishInt,
  kms_contract_address: nullishString,
  app_contract_address: nullishString,
  deployer_address: nullishString,
  deployer_type: z.enum(['eoa', 'safe', 'legacy_multisig', 'erc4337', 'contract']).nullish(),
  is_contract: z.boolean().default(false),
  safe_app_url: nullishString,
});
export type AppKmsInfo = z.infer<typeof AppKmsInfoSchema>;

// ---------------------------------------------------------------------------
// Operations and status
// ---------------------------------------------------------------------------

export const OperationEventDetailSchema = z.looseObject({
  event_type: z.string(),
  timestamp: z.string(),
  state: z.string(),
});

export const CvmOperationSchema = z.looseObject({
  correlation_id: z.string(),
  operation_type: z.string(),
  target_state: z.string(),
  triggered_by: z.number().int(),
  triggered_by_username: nullishString,
  triggered_by_email: nullishString,
  started_at: z.string(),
  completed_at: nullishString,
  duration_ms: nullishInt,
  /** completed | in_progress | failed (free text in the OpenAPI). */
  status: z.string(),
  error_message: nullishString,
  sub_operations: z.array(z.string()),
  events: z.array(OperationEventDetailSchema),
  instance_name: z.string(),
  compose_hash: nullishString,
});
export type CvmOperation = z.infer<typeof CvmOperationSchema>;

/** GET /cvms/{id}/operations — cursor pagination, newest first. */
export const CvmOperationsPageSchema = z.looseObject({
  items: z.array(CvmOperationSchema),
  next_cursor: nullishString,
  total: z.number().int(),
});
export type CvmOperationsPage = z.infer<typeof CvmOperationsPageSchema>;

/**
 * GET /cvms/{id}/state without `target` (the OpenAPI leaves the body untyped;
 * fields follow the SDK's CvmStateSchema, all but `status` optional).
 */
export const CvmStateSchema = z.looseObject({
  id: nullishString,
  instance_id: nullishString,
  name: nullishString,
  status: z.string(),
  uptime: nullishString,
  exited_at: nullishString,
  boot_progress: nullishString,
  boot_error: nullishString,
  shutdown_progress: nullishString,
});
export type CvmState = z.infer<typeof CvmStateSchema>;

export const GuestEventSchema = z.looseObject({
  event: z.string(),
  body: z.string(),
  timestamp: z.number().int().default(0),
});

export const CvmStatusSchema = z.looseObject({
  vm_uuid: z.string(),
  status: z.string(),
  uptime: nullishString,
  in_progress: z.boolean().default(false),
  boot_progress: nullishString,
  boot_error: nullishString,
  shutdown_progress: nullishString,
  events: z.array(GuestEventSchema).nullish(),
  /** Flat operation fields: API versions before 2026-06-23. */
  operation_type: nullishString,
  operation_started_at: nullishString,
  correlation_id: nullishString,
  /** The same facts as one object (@phala/cloud models it so since 0.3). */
  operation: z
    .looseObject({
      type: nullishString,
      phase: nullishString,
      started_at: nullishString,
      correlation_id: nullishString,
    })
    .nullish(),
});
export type CvmStatus = z.infer<typeof CvmStatusSchema>;

/** POST /status/batch request. Keys are VM UUIDs, not CVM ids. */
export const BatchStatusRequestSchema = z.looseObject({
  vm_uuids: z.array(z.string()),
});
export type BatchStatusRequest = z.infer<typeof BatchStatusRequestSchema>;

/** POST /status/batch response: vm_uuid → status. */
export const BatchStatusResponseSchema = z.record(z.string(), CvmStatusSchema);
export type BatchStatusResponse = z.infer<typeof BatchStatusResponseSchema>;

// ---------------------------------------------------------------------------
// Error bodies
// ---------------------------------------------------------------------------

export const StructuredErrorDetailSchema = z.looseObject({
  field: z.string(),
  value: z.unknown().optional(),
  message: nullishString,
});
export type StructuredErrorDetail = z.infer<typeof StructuredErrorDetailSchema>;

export const StructuredErrorLinkSchema = z.looseObject({
  label: z.string(),
  url: z.string(),
});

/** The backend's StructuredError (used by 465–468 and other business errors). */
export const StructuredErrorBodySchema = z.looseObject({
  error_code: z.string(),
  message: z.string(),
  details: z.array(StructuredErrorDetailSchema).nullish(),
  suggestions: z.array(z.string()).nullish(),
  links: z.array(StructuredErrorLinkSchema).nullish(),
  request_id: nullishString,
});
export type StructuredErrorBody = z.infer<typeof StructuredErrorBodySchema>;

export const ValidationErrorItemSchema = z.looseObject({
  loc: z.array(z.union([z.string(), z.number()])),
  msg: z.string(),
  type: z.string(),
});
export type ValidationErrorItem = z.infer<typeof ValidationErrorItemSchema>;

/**
 * FastAPI HTTPException / RequestValidationError body. `detail` may also hold
 * a StructuredError (the "detail-wrapped" form).
 */
export const FastApiErrorBodySchema = z.looseObject({
  detail: z.union([z.string(), z.array(ValidationErrorItemSchema), z.record(z.string(), z.unknown())]),
});
export type FastApiErrorBody = z.infer<typeof FastApiErrorBodySchema>;
