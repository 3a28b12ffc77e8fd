import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { freeTemporalPorts } from '../../src/cluster/temporal-server';
import { startTemporalCluster, type TemporalCluster } from '../../src/cluster/topology';
import { findFreePort } from '../../src/temporal/net';
import { quietBundlerLogger, workflowBundleOptions } from '../../src/worker-set';

declare global {
  var __TEMPORAL_CLUSTER__: TemporalCluster | undefined;
}

/**
 * One PostgreSQL and one Temporal server (4 history shards, SQL visibility) for the whole cluster suite, on free
 * ports and a throwaway data directory; each test file starts its own API, control worker and model runners on it.
 * The first run on a machine builds the server (minutes); its progress is printed.
 */
export default async function globalSetup(): Promise<void> {
  const projectRoot = resolve(__dirname, '..', '..');
  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-cluster-'));
  // PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the directory.
  chmodSync(dir, 0o755);
  const started = Date.now();
  const [cluster, bundle] = await Promise.all([
    startTemporalCluster({
      projectRoot,
      dataDir: join(dir, 'cluster'),
      temporalPorts: await freeTemporalPorts(),
      postgresPort: await findFreePort(),
      env: {},
      log: (line) => console.log(line),
    }),
    bundleWorkflowCode({ ...workflowBundleOptions(), logger: quietBundlerLogger() }),
  ]);
  console.log(`cluster suite: PostgreSQL + Temporal server ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  globalThis.__TEMPORAL_CLUSTER__ = cluster;
  process.env.CLUSTER_TEMPORAL_ADDRESS = cluster.address;
  process.env.CLUSTER_TEMPORAL_CLI = cluster.cliPath;
  process.env.CLUSTER_TMP_DIR = dir;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
}
