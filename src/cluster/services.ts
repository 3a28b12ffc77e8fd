/**
 * Our processes in the cluster: their roles (docker-compose.yml's service names), the environment each one gets, the
 * supervisor that restarts one that dies, and starting them all on a Temporal server.
 */
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { quietBundlerLogger, workflowBundleOptions } from '../worker-set';
import { spawnService, type ServiceProcess } from './service-process';
import { callerStoreEnv, type ClusterStoreEnv } from './store';

/** Roles of our processes, as docker-compose.yml names its services. */
export const ClusterRole = { Api: 'api', Worker: 'worker', ModelRunner: 'model-runner' } as const;
export type ClusterRole = (typeof ClusterRole)[keyof typeof ClusterRole];

/** One of our processes, restarted with the same environment when it is killed or dies. */
export class ClusterService {
  current: ServiceProcess;
  /** The current process has announced readiness. */
  isReady = false;
  private expectingExit = false;
  private stopped = false;
  /** Exits nobody asked for; each one was followed by a restart, as `restart: unless-stopped` does. */
  unplannedExits: { how: string; output: string }[] = [];
  /** Told about each unplanned exit (the chaos run counts them). */
  onUnplannedExit?: (how: string, output: string) => void;

  constructor(
    readonly name: string,
    private readonly launchProcess: () => ServiceProcess,
    private readonly log: (line: string) => void,
  ) {
    this.current = this.launch();
  }

  /** kill -9, a pause, and a fresh process; resolves once it is ready (or has failed to start and is retrying). */
  async crashAndRestart(downMs: number): Promise<void> {
    this.expectingExit = true;
    await this.current.kill();
    await sleep(downMs);
    this.expectingExit = false;
    this.current = this.launch();
    await this.current.ready.catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.current.stop(15_000);
  }

  private launch(): ServiceProcess {
    const proc = this.launchProcess();
    this.isReady = false;
    void proc.ready.then(
      () => {
        if (proc === this.current) this.isReady = true;
      },
      () => undefined,
    );
    void proc.exited.then(async (how) => {
      if (this.stopped || this.expectingExit || proc !== this.current) return;
      this.unplannedExits.push({ how, output: proc.output() });
      this.onUnplannedExit?.(how, proc.output());
      this.log(`[cluster] ${this.name} exited (${how}) on its own; restarting it`);
      await sleep(1000);
      if (!this.stopped && proc === this.current) this.current = this.launch();
    });
    return proc;
  }
}

/**
 * The environment of one of our processes: the names and values docker-compose.yml's `x-app-env` and service blocks
 * set (test/ops/compose.test.ts checks they match), each overridable from `options.env`.
 */
export function clusterServiceEnv(
  role: ClusterRole,
  options: {
    address: string;
    dataDir: string;
    apiPort: number;
    metricsPort?: number;
    env: Record<string, string | undefined>;
    projectRoot: string;
    /** The shared object store ({@link ClusterStore.env}). */
    store: ClusterStoreEnv;
  },
): Record<string, string> {
  const e = options.env;
  const common: Record<string, string> = {
    ...options.store,
    HOST: '127.0.0.1',
    TEMPORAL_ADDRESS: options.address,
    TEMPORAL_NAMESPACE: e.TEMPORAL_NAMESPACE ?? 'default',
    TEMPORAL_TASK_QUEUE: e.TEMPORAL_TASK_QUEUE ?? 'fal-queue',
    DATA_DIR: options.dataDir,
    MODELS_FILE: e.MODELS_FILE ?? join(options.projectRoot, 'models.json'),
    PUBLIC_BASE_URL: e.PUBLIC_BASE_URL ?? `http://127.0.0.1:${options.apiPort}`,
    API_KEYS: e.API_KEYS ?? 'local:local-secret',
    EGRESS_ALLOW: e.EGRESS_ALLOW ?? '',
    LORA_BACKEND_URL: e.LORA_BACKEND_URL ?? '',
    LOG_LEVEL: e.LOG_LEVEL ?? 'info',
  };
  const metrics: Record<string, string> =
    options.metricsPort === undefined ? {} : { METRICS_PORT: String(options.metricsPort) };
  switch (role) {
    case ClusterRole.Api:
      return { ...common, PORT: String(options.apiPort) };
    case ClusterRole.Worker:
      return { ...common, WORKER_CONTROL: 'true', WORKER_MODELS: '', ...metrics };
    case ClusterRole.ModelRunner:
      return { ...common, WORKER_CONTROL: 'false', WORKER_MODELS: e.RUNNER_MODELS ?? '*', ...metrics };
  }
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

/** What {@link startServices} starts. */
export interface ServicesOptions {
  projectRoot: string;
  /** Each process's DATA_DIR is under `dataDir/services/`, its log under `dataDir/logs/`. */
  dataDir: string;
  /** `TEMPORAL_ADDRESS` of every process. */
  address: string;
  apiPort: number;
  /** `METRICS_PORT` of the control worker; runner `i` (from 0) gets `metricsPort + 1 + i`. Omitted = no metrics. */
  metricsPort?: number;
  /** Model runner processes. */
  runners: number;
  /**
   * The environment our processes start from (the caller's `process.env` for `npm run cluster`): every name
   * docker-compose.yml sets can be given here, and anything else (WEBHOOK_*, ...) passes through. With
   * `STORAGE_URL` set, the caller's store (and S3_*, AWS_*) is used.
   */
  env: Record<string, string | undefined>;
  /** Per-role additions on top of everything else (tests: a models file, a webhook schedule). */
  roleEnv?: Partial<Record<ClusterRole, Record<string, string>>>;
  log: (line: string) => void;
  /** Receives every line our processes print; omitted = only their log files get them. */
  processLog?: (line: string) => void;
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
}

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

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((kv): kv is [string, string] => kv[1] !== undefined));
}
