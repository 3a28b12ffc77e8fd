/**
 * Our processes in the cluster: their roles (docker-compose.yml's service names), the environment each one gets, and
 * the supervisor that restarts one that dies.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceProcess } from './service-process';
import type { ClusterStoreEnv } from './store';

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
