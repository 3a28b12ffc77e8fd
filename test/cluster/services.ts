import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ClusterStoreEnv } from '../../src/cluster/store';
import { startServices, type ClusterServices } from '../../src/cluster/services';
import { findFreePort } from '../../src/temporal/net';

export const CLUSTER_KEY = 'cluster-key:cluster-secret';

/** Our processes on the suite's Temporal server, as `npm run cluster` starts them, with a test's models. */
export interface TestServices extends ClusterServices {
  taskQueue: string;
  /** Holds each process's DATA_DIR, at `services/<name>`. */
  dataDir: string;
  /** fetch against the API with the suite's key. */
  call(path: string, init?: RequestInit): Promise<Response>;
}

/** The suite's object store (global-setup.ts), as every process of the cluster gets it. */
export function suiteStore(): ClusterStoreEnv {
  if (!process.env.CLUSTER_STORE_ENV) throw new Error('CLUSTER_STORE_ENV is unset: run through jest.cluster.config.js');
  return JSON.parse(process.env.CLUSTER_STORE_ENV) as ClusterStoreEnv;
}

/**
 * Starts the API, one control worker and two model runner processes (each its own DATA_DIR) against the suite's
 * cluster and store, with `models` as the models file and a task queue of their own.
 */
export async function startTestServices(models: unknown, env: Record<string, string> = {}): Promise<TestServices> {
  const address = process.env.CLUSTER_TEMPORAL_ADDRESS;
  if (!address) throw new Error('CLUSTER_TEMPORAL_ADDRESS is unset: run through jest.cluster.config.js');
  const dir = mkdtempSync(join(process.env.CLUSTER_TMP_DIR!, 'services-'));
  const modelsFile = join(dir, 'models.json');
  writeFileSync(modelsFile, JSON.stringify(models));
  const taskQueue = `cluster-${randomUUID()}`;
  const apiPort = await findFreePort();
  const services = await startServices({
    projectRoot: resolve(__dirname, '..', '..'),
    dataDir: dir,
    address,
    apiPort,
    runners: 2,
    store: suiteStore(),
    workflowBundlePath: process.env.TEST_WORKFLOW_BUNDLE,
    env: {
      TEMPORAL_TASK_QUEUE: taskQueue,
      MODELS_FILE: modelsFile,
      API_KEYS: `${CLUSTER_KEY}:alice`,
      // Receivers and model backends in tests are on loopback, which egress refuses unless allow-listed.
      EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
      // Readiness is read from the processes' info lines; their logs go to files only.
      LOG_LEVEL: 'info',
      WEBHOOK_SCHEDULE: '0s,300ms,300ms,300ms',
      WEBHOOK_TIMEOUT_MS: '2000',
      ...env,
    },
    log: () => undefined,
  });
  return Object.assign(services, {
    taskQueue,
    dataDir: dir,
    call: (path: string, init: RequestInit = {}) =>
      fetch(`${services.apiUrl}${path}`, {
        ...init,
        headers: { authorization: `Key ${CLUSTER_KEY}`, ...(init.headers as Record<string, string>) },
      }),
  });
}

/** Polls `fn` until it returns something other than undefined. */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
