// What an activity call means to the metrics, by activity type name: the one place to update
// when activities are renamed or moved (e.g. into a per-signer transaction manager).
// Workflow-safe: plain data and functions, no Node imports.

/** Registration transaction events counted in cvm_env_registration_transactions_total. */
export type RegistrationEvent = 'signed' | 'replaced' | 'sent' | 'rebroadcast';

interface Meaning {
  /** Signing a registration: a replacement when the input names the transaction it replaces. */
  signs?: (input: { replacing?: unknown } | undefined) => Extract<RegistrationEvent, 'signed' | 'replaced'>;
  /** Broadcasting signed bytes: the first time a raw transaction goes out it is "sent", later "rebroadcast". */
  broadcastsRaw?: (input: { raw?: unknown } | undefined) => string | undefined;
  /** Resolving the CVM: its result names the KMS kind every other update metric is labelled with. */
  resolvesKms?: (result: { kms?: unknown } | undefined) => string | undefined;
}

export const ACTIVITY_MEANINGS: Readonly<Record<string, Meaning>> = {
  signRegistration: { signs: (input) => (input?.replacing ? 'replaced' : 'signed') },
  broadcastTransaction: { broadcastsRaw: (input) => (typeof input?.raw === 'string' ? input.raw : undefined) },
  resolveCvm: { resolvesKms: (result) => (typeof result?.kms === 'string' ? result.kms : undefined) },
};
