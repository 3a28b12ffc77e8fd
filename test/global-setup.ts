import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { ensureTemporalCli } from '../src/temporal/cli';
import { ensureSeaweedFs } from '../src/tools/seaweedfs';
import { startDevServer, type DevServer } from '../src/temporal/dev-server';
import { quietBundlerLogger, workflowBundleOptions } from '../src/worker-set';

declare global {
  var __TEMPORAL_DEV_SERVER__: DevServer | undefined;
}

/**
 * One real Temporal dev server (throwaway database, free ports) and one workflow bundle for the
 * whole run; each test isolates itself with its own task queue and request ids.
 */
export default async function globalSetup(): Promise<void> {
  const projectRoot = resolve(__dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-test-'));
  const cliPath = await ensureTemporalCli({ projectRoot, log: (line) => console.log(line) });
  // SeaweedFS (the storage suites' S3 store) is built once per machine, into ~/.cache; minutes on the first run.
  const weed = ensureSeaweedFs((line) => console.log(line)).then(
    (path) => void (process.env.SEAWEEDFS_PATH = path),
    (err: unknown) => void (process.env.SEAWEEDFS_ERROR = (err as Error).message),
  );
  const [server, bundle] = await Promise.all([
    startDevServer({
      cliPath,
      dbFile: join(dir, 'temporal.db'),
      port: 0,
      uiPort: false,
      searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
    }),
    bundleWorkflowCode({ ...workflowBundleOptions(), logger: quietBundlerLogger() }),
  ]);
  await weed;
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  globalThis.__TEMPORAL_DEV_SERVER__ = server;
  process.env.TEST_TEMPORAL_ADDRESS = server.address;
  process.env.TEST_TEMPORAL_CLI = cliPath;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.TEST_TMP_DIR = dir;
}
