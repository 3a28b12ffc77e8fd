import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { startClusterStore, type ClusterStore } from '../../src/cluster/store';
import { startThrowawayTemporalCluster, type TemporalCluster } from '../../src/cluster/temporal-cluster';
import { freeSeaweedFsPorts } from '../../src/tools/seaweedfs';
import { quietBundlerLogger, workflowBundleOptions } from '../../src/worker-set';

declare global {
  var __TEMPORAL_CLUSTER__: TemporalCluster | undefined;
  var __CLUSTER_STORE__: ClusterStore | undefined;
}

/**
 * One PostgreSQL, one Temporal server (4 history shards, SQL visibility) and one SeaweedFS for the whole cluster suite,
 * as `npm run cluster` starts them, on free ports and a throwaway data directory; each test file starts its own API,
 * control worker and model runners on them. The first run on a machine builds the server and SeaweedFS (minutes);
 * the progress is printed.
 */
export default async function globalSetup(): Promise<void> {
  const projectRoot = resolve(__dirname, '..', '..');
  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-cluster-'));
  // PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the directory.
  chmodSync(dir, 0o755);
  const started = Date.now();
  const log = (line: string) => console.log(line);
  const [cluster, store, bundle] = await Promise.all([
    startThrowawayTemporalCluster({ projectRoot, dataDir: join(dir, 'cluster'), log }),
    startClusterStore({ dataDir: join(dir, 'cluster'), ports: await freeSeaweedFsPorts(), env: {}, log }),
    bundleWorkflowCode({ ...workflowBundleOptions(), logger: quietBundlerLogger() }),
  ]);
  console.log(
    `cluster suite: PostgreSQL + Temporal server + SeaweedFS ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  globalThis.__TEMPORAL_CLUSTER__ = cluster;
  globalThis.__CLUSTER_STORE__ = store;
  // Every test file's processes share this store, as the cluster's do.
  process.env.CLUSTER_STORE_ENV = JSON.stringify(store.env);
  process.env.CLUSTER_TEMPORAL_ADDRESS = cluster.address;
  process.env.CLUSTER_TEMPORAL_CLI = cluster.cliPath;
  process.env.CLUSTER_TMP_DIR = dir;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
}
