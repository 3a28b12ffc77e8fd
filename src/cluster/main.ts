/**
 * `npm run cluster`: the production topology on this machine (docs/clusters.md). Reads the same
 * environment names as docker-compose.yml; Ctrl-C stops everything; a second start reuses the built
 * binaries and `.data/cluster` (database, stored objects, the store's key pair).
 */
import { join, resolve } from 'node:path';
import { defaultClusterPorts, startCluster } from './topology';

async function main(): Promise<void> {
  const projectRoot = resolve(__dirname, '..', '..');
  const env = process.env;
  const dataDir = resolve(env.CLUSTER_DATA_DIR ?? join(projectRoot, '.data', 'cluster'));
  const runners = Number(env.CLUSTER_RUNNERS ?? 2);
  if (!Number.isInteger(runners) || runners < 1) throw new Error(`CLUSTER_RUNNERS must be 1 or more, got ${runners}`);
  const verbose = env.CLUSTER_VERBOSE === 'true' || env.CLUSTER_VERBOSE === '1';
  const log = (line: string) => console.log(line);
  const started = Date.now();

  // Until everything is up, Ctrl-C just exits: the exit hook kills what has started (the terminal's SIGINT reached
  // it too). Afterwards it stops everything in order.
  const exitNow = () => process.exit(130);
  process.once('SIGINT', exitNow);
  process.once('SIGTERM', exitNow);
  const cluster = await startCluster({
    projectRoot,
    dataDir,
    ...defaultClusterPorts(env),
    runners,
    env,
    log,
    processLog: verbose ? log : undefined,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n[cluster] ${signal}: stopping our processes, the Temporal server, PostgreSQL, then the store ...`);
    await cluster.stopAll();
    console.log('[cluster] stopped');
    process.exit(0);
  };
  process.off('SIGINT', exitNow);
  process.off('SIGTERM', exitNow);
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  const key = (env.API_KEYS ?? 'local:local-secret').split(',')[0]!;
  console.log(
    [
      '',
      `  Cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      `  Queue API        ${cluster.apiUrl}   (API key ${key})`,
      `  Temporal         ${cluster.address}   namespace ${cluster.namespace}, 4 history shards, PostgreSQL visibility`,
      `  PostgreSQL       ${cluster.postgres.url.replace(/:[^:@]*@/, ':***@')}`,
      cluster.store.seaweedfs
        ? `  Object store     SeaweedFS ${cluster.store.env.S3_ENDPOINT}, ${cluster.store.env.STORAGE_URL} ` +
          `(key ${cluster.store.env.AWS_ACCESS_KEY_ID}; secret in ${join(dataDir, 'seaweedfs-keys.json')})`
        : `  Object store     ${cluster.store.env.STORAGE_URL} (yours: STORAGE_URL is set)`,
      `  Processes        api pid ${cluster.api.current.pid}, worker pid ${cluster.worker.current.pid}, ` +
        cluster.runners.map((r) => `${r.name} pid ${r.current.pid}`).join(', '),
      `  Data and logs    ${dataDir} (logs/<process>.log)`,
      '',
      `  temporal workflow list --address ${cluster.address} --query "FalModelId='fal-ai/esrgan'"`,
      '',
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
