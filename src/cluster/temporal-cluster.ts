/**
 * PostgreSQL and the Temporal server on it (4 history shards, SQL visibility), with schema, namespace and our search
 * attributes: the part of the topology our processes connect to.
 */
import { join, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureTemporalCli } from '../temporal/cli';
import { findFreePort } from '../temporal/net';
import { Postgres } from './postgres';
import type { ServiceProcess } from './service-process';
import {
  ensureTemporalServer,
  freeTemporalPorts,
  runClusterSetup,
  startTemporalServer,
  writeTemporalServerConfig,
  type TemporalPorts,
  type TemporalServerBinaries,
} from './temporal-server';

/** What {@link startTemporalCluster} brings up. */
export interface TemporalClusterOptions {
  projectRoot: string;
  /** Everything the cluster keeps between starts: PostgreSQL's data, the server config, each process's DATA_DIR. */
  dataDir: string;
  /** Ports of the Temporal server; its frontend is `TEMPORAL_ADDRESS`. */
  temporalPorts: TemporalPorts;
  postgresPort: number;
  /**
   * The environment the cluster starts from (the caller's `process.env` for `npm run cluster`): here
   * `POSTGRES_PASSWORD` and `TEMPORAL_NAMESPACE`, as docker-compose.yml names them.
   */
  env: Record<string, string | undefined>;
  log: (line: string) => void;
  /** Receives every line the processes print; omitted = only their log files get them. */
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

/** PostgreSQL's superuser for the cluster, as docker-compose.yml's POSTGRES_USER / POSTGRES_PASSWORD default. */
const DEFAULT_DB_USER = 'temporal';
const DEFAULT_DB_PASSWORD = 'temporal';

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
