// `npm run build`: dist/ with JS, declarations and source maps, plus the prebuilt
// workflow bundle the worker loads from dist (no bundling, no webpack at start).
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILT_BUNDLE_FILE, buildWorkflowBundle } from '../src/workflow-bundling.ts';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
const t0 = Date.now();
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
const code = await buildWorkflowBundle();
writeFileSync(join(dist, BUILT_BUNDLE_FILE), code);
console.log(`built dist/ with ${BUILT_BUNDLE_FILE} (${(code.length / 1024).toFixed(0)} KiB) in ${Date.now() - t0} ms`);
