/**
 * The Temporal server itself (not the CLI's dev server) for the cluster topology: built once from the
 * Go module proxy and cached by version, configured for PostgreSQL with SQL visibility, its schema
 * and namespace set up by the same script docker-compose.yml runs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { waitForTemporal } from '../temporal/readiness';
import { ensureGoBinary, GoBuildMode } from '../tools/go-binary';
import { runCommand, spawnService, type ServiceProcess } from './service-process';

/** The server version the Temporal CLI 1.9.1 embeds in its dev server, so both run the same server code. */
export const TEMPORAL_SERVER_VERSION = 'v1.32.0';
const MODULE = 'go.temporal.io/server';
// Leaves out the optional gRPC plugins (not used here); the tag the server's own release build uses.
const BUILD_TAGS = ['disable_grpc_modules'];

/** The built binaries and the server module's source (config templates and SQL schema). */
export interface TemporalServerBinaries {
  server: string;
  /** The schema tool (`temporal-sql-tool` in Temporal's images). */
  sql: string;
  /** The module in Go's module cache: `config/`, `schema/`. */
  moduleDir: string;
}

/**
 * Returns the server and schema tool, building them on first use (about 3.5 minutes on 2 cores, once per machine:
 * the cache lives outside the clone, see `ensureGoBinary`).
 */
export async function ensureTemporalServer(log: (line: string) => void): Promise<TemporalServerBinaries> {
  const common = { modulePath: MODULE, version: TEMPORAL_SERVER_VERSION, mode: GoBuildMode.Install, tags: BUILD_TAGS };
  // One after the other: they share most packages, so the second build mostly reuses Go's build cache.
  const server = await ensureGoBinary({ ...common, name: 'server', pkg: 'cmd/server', log });
  const sql = await ensureGoBinary({ ...common, name: 'sql', pkg: 'cmd/tools/sql', log });
  const output = await runCommand('go', ['mod', 'download', '-json', `${MODULE}@${TEMPORAL_SERVER_VERSION}`], {
    env: { GOFLAGS: '-mod=mod' },
    cwd: '/',
  });
  const moduleDir = (JSON.parse(output) as { Dir?: string }).Dir;
  if (!moduleDir) throw new Error(`go mod download gave no directory for ${MODULE}@${TEMPORAL_SERVER_VERSION}`);
  return { server, sql, moduleDir };
}

/** Ports of one server process; every service of the server runs in it (frontend, history, matching, worker). */
export interface TemporalPorts {
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  frontendMembership: number;
  historyMembership: number;
  matchingMembership: number;
  workerMembership: number;
}

/**
 * The ports of Temporal's own layout around `frontend` (7233 → history 7234, matching 7235, worker 7239, HTTP 7243,
 * membership 6933-6939), so a restart finds its peers where the database's membership table says they were.
 */
export function temporalPorts(frontend: number): TemporalPorts {
  return {
    frontend,
    frontendHttp: frontend + 10,
    history: frontend + 1,
    matching: frontend + 2,
    worker: frontend + 6,
    frontendMembership: frontend - 300,
    historyMembership: frontend - 299,
    matchingMembership: frontend - 298,
    workerMembership: frontend - 294,
  };
}

/**
 * A frontend port whose whole {@link temporalPorts} layout is free on 127.0.0.1 (tests run beside other servers).
 * Drawn below 32768, not from the kernel's ephemeral range: the SQL schema keeps membership ports in a `smallint`
 * (`cluster_membership.rpc_port`), and a server whose membership port is above 32767 dies at start with
 * "value … is out of range for type smallint".
 */
export async function freeTemporalPorts(): Promise<TemporalPorts> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    const ports = temporalPorts(candidate);
    if (await allFree(Object.values(ports))) return ports;
  }
  throw new Error('no free port layout for a Temporal server found on 127.0.0.1');
}

async function allFree(ports: number[]): Promise<boolean> {
  const { createServer } = await import('node:net');
  for (const port of ports) {
    const free = await new Promise<boolean>((done) => {
      const server = createServer();
      server.once('error', () => done(false));
      server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
    });
    if (!free) return false;
  }
  return true;
}

/** What the server connects to and where it listens. */
export interface TemporalServerConfigOptions {
  moduleDir: string;
  ports: TemporalPorts;
  postgres: { port: number; user: string; password: string };
  /** Absolute path of the dynamic config file (the server resolves relative ones against its working directory). */
  dynamicConfigFile: string;
  /** @default 4 */
  numHistoryShards?: number;
  /** @default 'warn' */
  logLevel?: string;
}

/**
 * The server's `config/development-postgres12.yaml`, adapted: every service and membership port on 127.0.0.1, no
 * archival, no pprof or metrics listener, an absolute dynamic config path, our PostgreSQL and shard count.
 */
export async function temporalServerConfig(options: TemporalServerConfigOptions): Promise<string> {
  const text = await readFile(join(options.moduleDir, 'config', 'development-postgres12.yaml'), 'utf8');
  const config = parse(text) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const { ports } = options;
  config.log = { stdout: true, level: options.logLevel ?? 'warn' };
  config.persistence.numHistoryShards = options.numHistoryShards ?? 4;
  for (const store of Object.values(config.persistence.datastores) as { sql: Record<string, unknown> }[]) {
    store.sql.connectAddr = `127.0.0.1:${options.postgres.port}`;
    store.sql.user = options.postgres.user;
    store.sql.password = options.postgres.password;
  }
  config.global.membership.broadcastAddress = '127.0.0.1';
  // Debug and metrics listeners are not needed, and their fixed ports (7936, 8000) collide between clusters.
  delete config.global.pprof;
  delete config.global.metrics;
  const rpc = (grpcPort: number, membershipPort: number, httpPort?: number) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: '127.0.0.1', ...(httpPort ? { httpPort } : {}) },
  });
  config.services = {
    frontend: rpc(ports.frontend, ports.frontendMembership, ports.frontendHttp),
    history: rpc(ports.history, ports.historyMembership),
    matching: rpc(ports.matching, ports.matchingMembership),
    worker: rpc(ports.worker, ports.workerMembership),
  };
  config.clusterMetadata.clusterInformation.active.rpcAddress = `127.0.0.1:${ports.frontend}`;
  config.clusterMetadata.clusterInformation.active.httpAddress = `127.0.0.1:${ports.frontendHttp}`;
  delete config.archival;
  delete config.namespaceDefaults;
  config.dynamicConfigClient = { filepath: options.dynamicConfigFile, pollInterval: '10s' };
  return stringify(config);
}

/** Writes {@link temporalServerConfig} to `file`. */
export async function writeTemporalServerConfig(file: string, options: TemporalServerConfigOptions): Promise<void> {
  await writeFile(file, await temporalServerConfig(options));
}

/** What {@link runClusterSetup} needs to reach PostgreSQL, the server and the tools. */
export interface ClusterSetupOptions {
  projectRoot: string;
  binaries: TemporalServerBinaries;
  cliPath: string;
  postgres: { port: number; user: string; password: string };
  address: string;
  namespace: string;
}

/**
 * The environment of `scripts/cluster/setup.sh`: the Temporal server's own variable names, which docker-compose.yml
 * gives its admin-tools services too (test/ops/compose.test.ts checks both against the script).
 */
export function clusterSetupEnv(options: ClusterSetupOptions): Record<string, string> {
  return {
    POSTGRES_SEEDS: '127.0.0.1',
    DB_PORT: String(options.postgres.port),
    POSTGRES_USER: options.postgres.user,
    POSTGRES_PWD: options.postgres.password,
    SQL_TOOL: options.binaries.sql,
    SCHEMA_DIR: join(options.binaries.moduleDir, 'schema'),
    TEMPORAL_CLI: options.cliPath,
    TEMPORAL_ADDRESS: options.address,
    TEMPORAL_NAMESPACE: options.namespace,
  };
}

/** Runs `scripts/cluster/setup.sh <step>` (shared with docker-compose.yml's admin-tools services). */
export async function runClusterSetup(
  step: 'schema' | 'namespace',
  options: ClusterSetupOptions & { log: (line: string) => void },
): Promise<void> {
  await runCommand('sh', [join(options.projectRoot, 'scripts', 'cluster', 'setup.sh'), step], {
    env: clusterSetupEnv(options),
    // The schema tool logs every statement; its output is kept for the error message, only our steps are shown.
    log: (line) => {
      if (line.startsWith('setup:')) options.log(line);
    },
  });
}

/** Starts `server --config-file … --allow-no-auth start` and resolves once the frontend answers. */
export async function startTemporalServer(options: {
  binary: string;
  configFile: string;
  address: string;
  logFile: string;
  log?: (line: string) => void;
  readyTimeoutMs?: number;
}): Promise<ServiceProcess> {
  const proc = spawnService({
    name: 'temporal',
    command: options.binary,
    args: ['--config-file', options.configFile, '--allow-no-auth', 'start'],
    logFile: options.logFile,
    log: options.log,
  });
  const failed = proc.exited.then((how) => {
    throw new Error(`the Temporal server exited (${how}) before it was ready:\n${proc.output()}`);
  });
  failed.catch(() => undefined);
  // The system namespace exists as soon as the server has bootstrapped; ours may not exist yet.
  await Promise.race([waitForTemporal(options.address, 'temporal-system', options.readyTimeoutMs ?? 120_000), failed]);
  return proc;
}
