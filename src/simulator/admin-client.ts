/**
 * A typed client of the simulator's /_sim control API, for tests and the dev tools: fresh CVMs,
 * scoped faults, behaviour settings, and the env a CVM really runs with.
 */
import type { BehaviourConfig } from './config.ts';
import type { FaultConfigInput, FaultRule, Phase2Lag } from './faults.ts';

export interface SimCvmSummary {
  id: string;
  name: string;
  appId: string;
  kms: 'onchain' | 'phala';
  ownerIsSigner: boolean;
  vmUuid: string;
  status: string;
  inProgress: boolean;
  composeHash: string;
  allowedEnvs: string[];
}

export interface SimAppliedEnv {
  cvm_id: string;
  /** Decrypted values whose keys the compose allows (what the guest runs with). */
  env: Record<string, string>;
  keys: string[];
  /** Keys present in the payload but dropped because `allowed_envs` does not list them. */
  dropped_keys: string[];
  allowed_envs: string[];
  compose_hash: string;
  correlation_id: string | null;
  applied_at: string | null;
}

export interface NewSimCvm {
  kms: 'onchain' | 'phala';
  /** Required for on-chain: a DstackApp contract on the stack's chain. */
  appId?: string;
  name?: string;
  allowedEnvs?: string[];
  applyDelayMs?: number;
  pendingTtlMs?: number;
  ownerIsSigner?: boolean;
  /** Extra fields merged into the CVM's compose (not allowed_envs). */
  composeExtra?: Record<string, unknown>;
}

export class SimAdminError extends Error {
  override readonly name = 'SimAdminError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class SimAdminClient {
  readonly simUrl: string;
  readonly #token: string;

  /** `url` may be the simulator root or its API base (…/api/v1). */
  constructor(url: string, adminToken: string) {
    this.simUrl = url.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    this.#token = adminToken;
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.simUrl}/_sim${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const data = text === '' ? undefined : (JSON.parse(text) as unknown);
    if (!res.ok) {
      const detail = (data as { detail?: unknown } | undefined)?.detail;
      throw new SimAdminError(res.status, `simulator ${method} ${path}: ${res.status} ${typeof detail === 'string' ? detail : text}`);
    }
    return data as T;
  }

  createCvm(spec: NewSimCvm): Promise<SimCvmSummary> {
    return this.#call('POST', '/cvms', {
      kms: spec.kms,
      ...(spec.appId !== undefined ? { app_id: spec.appId } : {}),
      ...(spec.name !== undefined ? { name: spec.name } : {}),
      ...(spec.allowedEnvs !== undefined ? { allowed_envs: spec.allowedEnvs } : {}),
      ...(spec.applyDelayMs !== undefined ? { apply_delay_ms: spec.applyDelayMs } : {}),
      ...(spec.pendingTtlMs !== undefined ? { pending_ttl_ms: spec.pendingTtlMs } : {}),
      ...(spec.ownerIsSigner !== undefined ? { owner_is_signer: spec.ownerIsSigner } : {}),
      ...(spec.composeExtra !== undefined ? { compose_extra: spec.composeExtra } : {}),
    });
  }

  /** `count` CVMs of one app (replicas: the same compose, so the same compose hash). */
  async createCvms(spec: NewSimCvm, count: number): Promise<SimCvmSummary[]> {
    const { items } = await this.#call<{ items: SimCvmSummary[] }>('POST', '/cvms', {
      kms: spec.kms,
      count,
      ...(spec.appId !== undefined ? { app_id: spec.appId } : {}),
      ...(spec.name !== undefined ? { name: spec.name } : {}),
      ...(spec.allowedEnvs !== undefined ? { allowed_envs: spec.allowedEnvs } : {}),
      ...(spec.applyDelayMs !== undefined ? { apply_delay_ms: spec.applyDelayMs } : {}),
      ...(spec.pendingTtlMs !== undefined ? { pending_ttl_ms: spec.pendingTtlMs } : {}),
      ...(spec.ownerIsSigner !== undefined ? { owner_is_signer: spec.ownerIsSigner } : {}),
    });
    return items;
  }

  cvm(id: string): Promise<SimCvmSummary> {
    return this.#call('GET', `/cvms/${encodeURIComponent(id)}`);
  }

  appliedEnv(id: string): Promise<SimAppliedEnv> {
    return this.#call('GET', `/cvms/${encodeURIComponent(id)}/env`);
  }

  addFaults(input: FaultConfigInput & { replace?: boolean }): Promise<{ added: { rules: string[]; phase2Lag: string[] } }> {
    return this.#call('POST', '/faults', input);
  }

  faults(): Promise<{ rules: FaultRule[]; phase2Lag: Phase2Lag[] }> {
    return this.#call('GET', '/faults');
  }

  /** Removes faults by rule id or CVM; with no filter, all of them. */
  removeFaults(filter: { id?: string; cvmId?: string } = {}): Promise<{ removed: number }> {
    const q = new URLSearchParams(filter as Record<string, string>).toString();
    return this.#call('DELETE', `/faults${q ? `?${q}` : ''}`);
  }

  config(): Promise<BehaviourConfig> {
    return this.#call('GET', '/config');
  }

  setConfig(patch: Partial<BehaviourConfig>): Promise<BehaviourConfig> {
    return this.#call('POST', '/config', patch);
  }

  /** Polls until the CVM has no update in flight. */
  async waitUntilIdle(id: string, timeoutMs = 15_000, pollMs = 50): Promise<SimCvmSummary> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const cvm = await this.cvm(id);
      if (!cvm.inProgress) return cvm;
      if (Date.now() > deadline) throw new Error(`CVM ${id} still has an update in progress after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
