// Prebuilds the workflow bundle a worker can load with WORKFLOW_BUNDLE_PATH (`npm run build`
// also writes one into dist/).
import { writeFileSync } from 'node:fs';
import { buildWorkflowBundle } from '../src/workflow-bundling.ts';

const out = process.argv[2] ?? 'dist/workflow-bundle.js';
const code = await buildWorkflowBundle();
writeFileSync(out, code);
console.log(`wrote ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
