/**
 * The production topology on one machine, without Docker: PostgreSQL, the Temporal server (4 history
 * shards, SQL visibility), the object store (SeaweedFS), our API, one control worker and model runner
 * processes. Every one of our processes has its own DATA_DIR and is configured only by the environment
 * names docker-compose.yml uses; they share the Temporal address and the store.
 */
import { seaweedFsPortsFrom, type SeaweedFsPorts } from '../tools/seaweedfs';
import { startServices, type ClusterServices, type ServicesOptions } from './services';
import { startClusterStore, type ClusterStore } from './store';
import { startTemporalCluster, type TemporalCluster, type TemporalClusterOptions } from './temporal-cluster';
import { temporalPorts, type TemporalPorts } from './temporal-server';

/** What {@link startCluster} brings up: the options of its parts, and where the object store listens. */
export interface ClusterOptions
  extends TemporalClusterOptions, Omit<ServicesOptions, 'address' | 'store' | 'workflowBundlePath' | 'readyTimeoutMs'> {
  /** Ports of SeaweedFS, unless `env.STORAGE_URL` names a store of the caller's. */
  storePorts: SeaweedFsPorts;
}

/** A running topology from {@link startCluster}. */
export type Cluster = TemporalCluster & ClusterServices & { store: ClusterStore; stopAll(): Promise<void> };

/**
 * The whole topology: {@link startTemporalCluster} and {@link startClusterStore}, then {@link startServices}. A second
 * call on the same `dataDir` reuses the database, the stored objects, the binaries and every DATA_DIR.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const [temporalResult, storeResult] = await Promise.allSettled([
    startTemporalCluster(options),
    startClusterStore({ ...options, ports: options.storePorts }),
  ]);
  if (temporalResult.status === 'rejected' || storeResult.status === 'rejected') {
    if (temporalResult.status === 'fulfilled') await temporalResult.value.stop();
    if (storeResult.status === 'fulfilled') await storeResult.value.stop();
    throw temporalResult.status === 'rejected' ? temporalResult.reason : (storeResult as PromiseRejectedResult).reason;
  }
  const temporal = temporalResult.value;
  const store = storeResult.value;
  try {
    const services = await startServices({ ...options, address: temporal.address, store: store.env });
    return Object.assign(temporal, services, {
      store,
      stop: services.stop,
      stopAll: async () => {
        await services.stop();
        await temporal.stop();
        await store.stop();
      },
    });
  } catch (err) {
    await temporal.stop();
    await store.stop();
    throw err;
  }
}

/**
 * The default layout of `npm run cluster`: Temporal's usual ports, PostgreSQL on 5433 (5432 may be taken), SeaweedFS's
 * S3 API on its usual 8333 (`CLUSTER_S3_PORT`) and its other parts on the next four ports.
 */
export function defaultClusterPorts(env: Record<string, string | undefined>): {
  temporalPorts: TemporalPorts;
  postgresPort: number;
  storePorts: SeaweedFsPorts;
  apiPort: number;
  metricsPort: number;
} {
  const frontend = Number(env.TEMPORAL_PORT ?? 7233);
  // Membership ports sit 294-300 below the frontend and must fit PostgreSQL's smallint (see freeTemporalPorts).
  if (!Number.isInteger(frontend) || frontend < 1324 || frontend > 32_000) {
    throw new Error(`TEMPORAL_PORT must be between 1324 and 32000 for the cluster, got ${env.TEMPORAL_PORT}`);
  }
  return {
    temporalPorts: temporalPorts(frontend),
    postgresPort: Number(env.CLUSTER_POSTGRES_PORT ?? 5433),
    storePorts: seaweedFsPortsFrom(Number(env.CLUSTER_S3_PORT ?? 8333)),
    apiPort: Number(env.PORT ?? 8080),
    metricsPort: Number(env.METRICS_PORT ?? 9464),
  };
}
