import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundleOptions } from '../src/worker-set';

/**
 * Build step (`npm run build`, after `tsc`): bundles the workflow code once into `dist/workflow-bundle.js`, so
 * production workers start without webpack (point WORKFLOW_BUNDLE_PATH at it).
 */
async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode(workflowBundleOptions());
  const out = join(__dirname, '..', 'dist', 'workflow-bundle.js');
  writeFileSync(out, code);
  console.log(`wrote ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
