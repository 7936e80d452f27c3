// The worker's workflow bundle entry point.
export { updateCvmEnvWorkflow } from './update-cvm-env.ts';
export { signerManagerWorkflow } from './signer-manager/workflow.ts';
export { rolloutWorkflow } from './rollout/workflow.ts';
