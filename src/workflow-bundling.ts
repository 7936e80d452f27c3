// The one recipe for the workflow bundle, used by the build, the worker and the tests. A
// prebuilt bundle only gets the data converter and interceptor modules it was built with:
// without the failure converter here, failure messages would reach history in clear.
import { existsSync } from 'node:fs';
import { bundleWorkflowCode, type BundleOptions } from '@temporalio/worker';
import { failureConverterPath } from './codec.ts';
import { siblingModule } from './entry.ts';

export const WORKFLOWS_PATH = siblingModule(import.meta.url, './workflows/index');

/** Workflow interceptor modules every worker (and replay) loads. */
export const WORKFLOW_INTERCEPTOR_MODULES: string[] = [siblingModule(import.meta.url, './observability/workflow-interceptors')];

/** Where `npm run build` writes the bundle: next to the compiled worker. */
export const BUILT_BUNDLE_FILE = 'workflow-bundle.js';

export function workflowBundleOptions(): Pick<BundleOptions, 'workflowsPath' | 'failureConverterPath' | 'workflowInterceptorModules'> {
  return { workflowsPath: WORKFLOWS_PATH, failureConverterPath, workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES };
}

export async function buildWorkflowBundle(logger?: BundleOptions['logger']): Promise<string> {
  const { code } = await bundleWorkflowCode({ ...workflowBundleOptions(), ...(logger ? { logger } : {}) });
  return code;
}

/** The bundle the build put beside this module, when running from dist/. */
export function builtBundlePath(): string | undefined {
  if (import.meta.url.endsWith('.ts')) return undefined;
  const path = siblingModule(import.meta.url, `./${BUILT_BUNDLE_FILE.replace(/\.js$/, '')}`);
  return existsSync(path) ? path : undefined;
}
