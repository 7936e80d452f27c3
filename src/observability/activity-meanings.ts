// What an activity call means to the metrics, by activity type name: the one place to update
// when activities are renamed or moved (e.g. into a per-signer transaction manager).
// Workflow-safe: plain data and functions, no Node imports.

/** Registration transaction events counted in cvm_env_registration_transactions_total. */
export type RegistrationEvent = 'signed' | 'replaced' | 'sent' | 'rebroadcast';

interface Meaning {
  /** How many registration transactions this call signed, new or replacing, read from its input and result. */
  signs?: (
    input: Record<string, unknown> | undefined,
    result: Record<string, unknown> | undefined,
  ) => { event: 'signed' | 'replaced'; count: number };
  /** The raw transactions a call broadcasts: the first time a raw transaction goes out it is "sent", later "rebroadcast". */
  broadcastsRaw?: (input: Record<string, unknown> | undefined) => string[];
  /** Resolving the CVM: its result names the KMS kind every other update metric is labelled with. */
  resolvesKms?: (result: { kms?: unknown } | undefined) => string | undefined;
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];

export const ACTIVITY_MEANINGS: Readonly<Record<string, Meaning>> = {
  // The per-signer transaction manager (since 0.2.0).
  signNewRegistrations: {
    signs: (_input, result) => ({
      event: 'signed',
      count: Array.isArray(result?.results) ? (result.results as { outcome?: string }[]).filter((r) => r.outcome === 'signed').length : 0,
    }),
  },
  signReplacement: { signs: (_input, result) => ({ event: 'replaced', count: result?.outcome === 'signed' ? 1 : 0 }) },
  broadcastTransactions: { broadcastsRaw: (input) => strings(input?.raws) },
  // The update workflow's own sender, before the manager (replayed histories, workflows still open).
  signRegistration: { signs: (input) => ({ event: input?.replacing ? 'replaced' : 'signed', count: 1 }) },
  broadcastTransaction: { broadcastsRaw: (input) => strings(input?.raw) },
  resolveCvm: { resolvesKms: (result) => (typeof result?.kms === 'string' ? result.kms : undefined) },
};
