/**
 * The production topology on one machine, without Docker: PostgreSQL, the Temporal server (4 history
 * shards, SQL visibility), the object store (SeaweedFS), our API, one control worker and model runner
 * processes. Every one of our processes has its own DATA_DIR and is configured only by the environment
 * names docker-compose.yml uses; they share the Temporal address and the store.
 */
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ensureTemporalCli } from '../temporal/cli';
import { findFreePort } from '../temporal/net';
import { seaweedFsPortsFrom, type SeaweedFsPorts } from '../tools/seaweedfs';
import { quietBundlerLogger, workflowBundleOptions } from '../worker-set';
import { Postgres } from './postgres';
import { spawnService, type ServiceProcess } from './service-process';
import { ClusterRole, ClusterService, clusterServiceEnv } from './services';
import { callerStoreEnv, startClusterStore, type ClusterStore, type ClusterStoreEnv } from './store';
import {
  ensureTemporalServer,
  freeTemporalPorts,
  runClusterSetup,
  startTemporalServer,
  temporalPorts,
  writeTemporalServerConfig,
  type TemporalPorts,
  type TemporalServerBinaries,
} from './temporal-server';

/** What {@link startCluster} brings up. */
export interface ClusterOptions {
  projectRoot: string;
  /** Everything the cluster keeps between starts: PostgreSQL's data, the server config, each process's DATA_DIR. */
  dataDir: string;
  /** Ports of the Temporal server; its frontend is `TEMPORAL_ADDRESS`. */
  temporalPorts: TemporalPorts;
  postgresPort: number;
  /** Ports of SeaweedFS, unless `env.STORAGE_URL` names a store of the caller's. */
  storePorts: SeaweedFsPorts;
  apiPort: number;
  /** `METRICS_PORT` of the control worker; runner `i` (from 0) gets `metricsPort + 1 + i`. Omitted = no metrics. */
  metricsPort?: number;
  /** Model runner processes. */
  runners: number;
  /**
   * The environment our processes start from (the caller's `process.env` for `npm run cluster`): every name
   * docker-compose.yml sets can be given here, and anything else (WEBHOOK_*, ...) passes through. With
   * `STORAGE_URL` set, the caller's store (and S3_*, AWS_*) is used and no SeaweedFS is started.
   */
  env: Record<string, string | undefined>;
  /** Per-role additions on top of everything else (tests: a models file, a webhook schedule). */
  roleEnv?: Partial<Record<ClusterRole, Record<string, string>>>;
  log: (line: string) => void;
  /** Receives every line our processes and the server print; omitted = only their log files get them. */
  processLog?: (line: string) => void;
}

/** PostgreSQL and a Temporal server on it, ready for our processes: see {@link startTemporalCluster}. */
export interface TemporalCluster {
  /** `TEMPORAL_ADDRESS` of every process. */
  address: string;
  namespace: string;
  postgres: Postgres;
  /** The Temporal server process; {@link TemporalCluster.restartTemporal} replaces it. */
  readonly temporal: ServiceProcess;
  binaries: TemporalServerBinaries;
  cliPath: string;
  /** kill -9 of the Temporal server and a fresh one on the same database; resolves once it answers. */
  restartTemporal(downMs?: number): Promise<void>;
  /** Stops the server, then PostgreSQL. */
  stop(): Promise<void>;
}

/** Our processes on a {@link TemporalCluster}: see {@link startServices}. */
export interface ClusterServices {
  apiUrl: string;
  api: ClusterService;
  worker: ClusterService;
  runners: ClusterService[];
  /** Every one of them, API first. */
  all: ClusterService[];
  /** Graceful stop of all of them (SIGTERM: drain). */
  stop(): Promise<void>;
}

/** A running topology from {@link startCluster}. */
export type Cluster = TemporalCluster & ClusterServices & { store: ClusterStore; stopAll(): Promise<void> };

/** PostgreSQL's superuser for the cluster, as docker-compose.yml's POSTGRES_USER / POSTGRES_PASSWORD default. */
const DEFAULT_DB_USER = 'temporal';
const DEFAULT_DB_PASSWORD = 'temporal';

/** What {@link startTemporalCluster} brings up. */
export type TemporalClusterOptions = Pick<
  ClusterOptions,
  'projectRoot' | 'dataDir' | 'temporalPorts' | 'postgresPort' | 'env' | 'log' | 'processLog'
>;

/**
 * A throwaway {@link startTemporalCluster} for tests and benchmarks: free loopback ports, the caller's defaults for
 * everything else. `dataDir` must be enterable by the `postgres` user when we run as root (mode 0755).
 */
export async function startThrowawayTemporalCluster(options: {
  projectRoot: string;
  dataDir: string;
  log: (line: string) => void;
}): Promise<TemporalCluster> {
  return startTemporalCluster({
    ...options,
    temporalPorts: await freeTemporalPorts(),
    postgresPort: await findFreePort(),
    env: {},
  });
}

/**
 * PostgreSQL (created on first use), the Temporal server (built on first use), schema, namespace and search
 * attributes; resolves once a workflow can start with our search attributes. A second call on the same `dataDir`
 * reuses the database and the binaries.
 */
export async function startTemporalCluster(options: TemporalClusterOptions): Promise<TemporalCluster> {
  const { log } = options;
  const started = Date.now();
  const dataDir = resolve(options.dataDir);
  const step = (text: string) => log(`[cluster] ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    stops.length = 0;
  };
  try {
    const password = options.env.POSTGRES_PASSWORD ?? DEFAULT_DB_PASSWORD;
    const pgCredentials = { port: options.postgresPort, user: DEFAULT_DB_USER, password };

    step('preparing PostgreSQL and the Temporal server binaries');
    const [postgres, binaries, cliPath] = await Promise.all([
      Postgres.prepare({ dir: join(dataDir, 'postgres'), ...pgCredentials, log }),
      ensureTemporalServer(log),
      ensureTemporalCli({ projectRoot: options.projectRoot, log }),
    ]);
    await postgres.start();
    stops.push(() => postgres.stop());
    step(`PostgreSQL ready on 127.0.0.1:${options.postgresPort}`);

    const address = `127.0.0.1:${options.temporalPorts.frontend}`;
    const namespace = options.env.TEMPORAL_NAMESPACE ?? 'default';
    const setup = { projectRoot: options.projectRoot, binaries, cliPath, postgres: pgCredentials, address, namespace };
    await runClusterSetup('schema', { ...setup, log: (line) => log(`[setup] ${line}`) });
    step('schema up to date (temporal, temporal_visibility)');

    const temporalDir = join(dataDir, 'temporal');
    await mkdir(temporalDir, { recursive: true });
    const configFile = join(temporalDir, 'config.yaml');
    await writeTemporalServerConfig(configFile, {
      moduleDir: binaries.moduleDir,
      ports: options.temporalPorts,
      postgres: pgCredentials,
      dynamicConfigFile: join(options.projectRoot, 'scripts', 'cluster', 'dynamicconfig.yaml'),
    });
    const launchTemporal = () =>
      startTemporalServer({
        binary: binaries.server,
        configFile,
        address,
        logFile: join(dataDir, 'logs', 'temporal.log'),
        log: options.processLog,
      });
    let temporal = await launchTemporal();
    stops.push(() => temporal.stop(15_000));
    step(`Temporal server ${address} serving (4 history shards, SQL visibility)`);
    await runClusterSetup('namespace', { ...setup, log: (line) => log(`[setup] ${line}`) });
    step(`namespace ${namespace} ready with our search attributes`);

    return {
      address,
      namespace,
      postgres,
      get temporal() {
        return temporal;
      },
      binaries,
      cliPath,
      async restartTemporal(downMs = 1000) {
        await temporal.kill();
        await sleep(downMs);
        temporal = await launchTemporal();
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** What {@link startServices} starts. */
export type ServicesOptions = Pick<
  ClusterOptions,
  'projectRoot' | 'dataDir' | 'apiPort' | 'metricsPort' | 'runners' | 'env' | 'roleEnv' | 'log' | 'processLog'
> & {
  address: string;
  /**
   * The object store every process uses ({@link ClusterStore.env}).
   * @default the caller's STORAGE_URL, S3_* and AWS_* from `env` (none: each process's own `local` store)
   */
  store?: ClusterStoreEnv;
  /** A prebuilt workflow bundle; omitted = bundled once into `dataDir`. */
  workflowBundlePath?: string;
  /**
   * How long every process may take to be ready (a loaded 2-core machine starts four Node processes slowly).
   * @default 180_000
   */
  readyTimeoutMs?: number;
};

/**
 * Our API, one control worker and `runners` model runner processes, each with its own DATA_DIR under
 * `dataDir/services/`, all pointed at `address`; resolves once every one of them is ready.
 */
export async function startServices(options: ServicesOptions): Promise<ClusterServices> {
  const dataDir = resolve(options.dataDir);
  let bundlePath = options.workflowBundlePath;
  if (!bundlePath) {
    // One bundle for the control worker, as production images ship it, rather than bundling in the process.
    bundlePath = join(dataDir, 'workflow-bundle.js');
    await mkdir(dataDir, { recursive: true });
    const { code } = await bundleWorkflowCode({ ...workflowBundleOptions(), logger: quietBundlerLogger() });
    writeFileSync(bundlePath, code);
  }
  const spawnOurs = (name: string, role: ClusterRole, metricsPort?: number) => {
    const env = {
      // Passed through: whatever the caller set (STORAGE_URL and S3_* for the shared object store, WEBHOOK_*, ...).
      ...definedOnly(options.env),
      ...clusterServiceEnv(role, {
        address: options.address,
        dataDir: join(dataDir, 'services', name),
        apiPort: options.apiPort,
        metricsPort,
        env: options.env,
        projectRoot: options.projectRoot,
        store: options.store ?? callerStoreEnv(options.env),
      }),
      // The API publishes the keys the control worker signs with: the one secret they share besides Temporal.
      WEBHOOK_KEYS_DIR: options.env.WEBHOOK_KEYS_DIR ?? join(dataDir, 'webhook-keys'),
      WORKFLOW_BUNDLE_PATH: bundlePath,
      ...options.roleEnv?.[role],
    };
    const entry = role === ClusterRole.Api ? 'src/server.ts' : 'src/worker.ts';
    return new ClusterService(
      name,
      () =>
        spawnService({
          name,
          command: process.execPath,
          args: ['--import', 'tsx', entry],
          cwd: options.projectRoot,
          env,
          readyText: role === ClusterRole.Api ? 'queue API listening' : 'workers polling',
          log: options.processLog,
          logFile: join(dataDir, 'logs', `${name}.log`),
        }),
      options.log,
    );
  };
  const metrics = (i: number) => (options.metricsPort === undefined ? undefined : options.metricsPort + i);
  const worker = spawnOurs('worker', ClusterRole.Worker, metrics(0));
  const runners = Array.from({ length: options.runners }, (_, i) =>
    spawnOurs(`runner-${i + 1}`, ClusterRole.ModelRunner, metrics(i + 1)),
  );
  const api = spawnOurs('api', ClusterRole.Api);
  const all = [api, worker, ...runners];
  const stop = async () => {
    await Promise.all(all.map((s) => s.stop()));
  };
  const readyTimeoutMs = options.readyTimeoutMs ?? 180_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(all.map((s) => s.current.ready)),
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          const waiting = all.filter((s) => !s.isReady).map((s) => s.name);
          // Readiness is read from each process's log ("workers polling", "queue API listening"), at level info.
          reject(new Error(`not ready after ${readyTimeoutMs} ms: ${waiting.join(', ')} (is LOG_LEVEL above info?)`));
        }, readyTimeoutMs);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  options.log(
    `[cluster] API ${`http://127.0.0.1:${options.apiPort}`}, control worker and ${runners.length} model runner(s) up`,
  );
  return { apiUrl: `http://127.0.0.1:${options.apiPort}`, api, worker, runners, all, stop };
}

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

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((kv): kv is [string, string] => kv[1] !== undefined));
}
