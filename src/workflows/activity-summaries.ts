// What each activity call does, in an operator's words: the summary the Temporal UI shows on
// the call's row, so that e.g. the two submits read "phase 1" and "phase 2" instead of one
// name twice. A call that sets its own summary keeps it. Workflow-safe; ids and hashes only.
type Arg = Record<string, unknown> | undefined;

/** Ids and hashes are short; anything longer is not repeated. */
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 80 ? v : undefined);

const SUMMARIES: Readonly<Record<string, (arg: Arg) => string>> = {
  validateInput: () => 'validate the env (keys, sizes)',
  findEarlierRequest: () => 'look for an earlier run of this CVM that carried the same requestId',
  resolveCvm: (a) => `resolve CVM ${str(a?.cvmId) ?? ''}`.trim(),
  getEncryptionKey: () => "fetch the CVM's env encryption key (signature checked)",
  encryptEnv: () => 'encrypt the env (once; both phases send this ciphertext)',
  submitEnvUpdate: (a) =>
    str(a?.transactionHash) ? `phase 2: submit the env with registration ${str(a?.transactionHash)}` : 'phase 1: submit the encrypted env',
  checkComposeHash: (a) =>
    str(a?.expected)
      ? `check compose hash ${str(a?.expected)} against the CVM's compose`
      : "check the compose hash against the CVM's compose",
  chainPreflight: (a) => `read the chain before registering compose hash ${str(a?.composeHash) ?? ''}`.trim(),
  requestRegistration: () => "ask the signer's transaction manager to register the compose hash",
  ownerRegistrationProposal: () => "prepare the app owner's addComposeHash call",
  watchOwnerRegistration: () => "watch the chain for the owner's registration",
  verifyRegistration: (a) => `check registration transaction ${str(a?.transactionHash) ?? ''}`.trim(),
  checkConfirmations: () => 'wait for confirmations of the registration',
  signRegistration: () => 'sign the registration transaction',
  broadcastTransaction: () => 'broadcast the registration transaction',
  observeTransactions: () => 'watch the registration transaction',
  observeApplied: () => 'wait until the CVM has applied the change',
};

export function activitySummary(activityType: string, arg: unknown): string | undefined {
  const a = typeof arg === 'object' && arg !== null ? (arg as Record<string, unknown>) : undefined;
  return SUMMARIES[activityType]?.(a);
}
