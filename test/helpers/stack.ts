import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config';
import { ModelRegistry } from '../../src/models/registry';
import type { RunnerOptions } from '../../src/models/runners';
import { startServer, type RunningServer } from '../../src/server';
import { startWorkers, type RunningWorkers } from '../../src/worker-set';
import { installTemporalRuntime } from '../../src/temporal/runtime';

export const TEST_KEY = 'test-key:test-secret';
export const OTHER_KEY = 'other-key:other-secret';

export interface StackOptions {
  /** The models file contents. */
  models: unknown;
  /** Extra environment (as a deployment would set it). */
  env?: Record<string, string>;
  /** Start in-process workers (default true). */
  workers?: boolean;
  /** Code-only options of the in-process workers' model runners (built-in hooks that hold a run). */
  runnerOptions?: RunnerOptions;
  /**
   * Start the workers first and serve the API on their connection, as `npm start` does (with TEMPORAL_EAGER_START in
   * `env`, submits then start request workflows eagerly). Files the workers store then get URLs on the default base
   * URL, not the API's.
   */
  shareConnection?: boolean;
}

export interface Stack {
  url: string;
  config: Config;
  registry: ModelRegistry;
  server: RunningServer;
  workers?: RunningWorkers;
  /** Environment for a worker started in another process against this stack. */
  workerEnv: Record<string, string>;
  /** fetch against the API with the test key. */
  api(path: string, init?: RequestInit & { key?: string | null }): Promise<Response>;
  startWorkers(): Promise<RunningWorkers>;
  stop(): Promise<void>;
}

/**
 * The real stack for one test file: API on a free port and workers, against the suite's Temporal dev
 * server, on a task queue of its own so suites never see each other's work.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is unset: run the tests through jest (global setup)');
  const dataDir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'stack-'));
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: `test-${randomUUID()}`,
    DATA_DIR: dataDir,
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE ?? '',
    API_KEYS: `${TEST_KEY}:alice,${OTHER_KEY}:bob`,
    WEBHOOK_SCHEDULE: '0s,300ms,300ms,300ms',
    WEBHOOK_TIMEOUT_MS: '2000',
    // Receivers and input servers in tests are on loopback, which egress refuses unless allow-listed.
    EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  const config = loadConfig(env);
  const registry = ModelRegistry.fromObject(options.models);
  const logger = pino({ level: config.logLevel });
  quietTemporalRuntime(logger);
  const shared = options.shareConnection
    ? await startWorkers(config, registry, logger, options.runnerOptions)
    : undefined;
  const server = await startServer(config, registry, logger, { workerConnection: shared?.connection });
  // Workers write file URLs; they must point at the API that serves them.
  config.http.publicBaseUrl = server.url;
  env.PUBLIC_BASE_URL = server.url;
  const started: RunningWorkers[] = shared ? [shared] : [];
  const stack: Stack = {
    url: server.url,
    config,
    registry,
    server,
    workerEnv: env,
    api(path, init = {}) {
      const { key = TEST_KEY, headers, ...rest } = init;
      return fetch(`${server.url}${path}`, {
        ...rest,
        headers: { ...(key ? { authorization: `Key ${key}` } : {}), ...(headers as Record<string, string>) },
      });
    },
    async startWorkers() {
      const w = await startWorkers(config, registry, logger, options.runnerOptions);
      started.push(w);
      return w;
    },
    async stop() {
      await server.stop();
      await Promise.all(started.map((w) => w.stop()));
    },
  };
  if (shared) stack.workers = shared;
  else if (options.workers !== false) stack.workers = await stack.startWorkers();
  return stack;
}

let runtimeInstalled = false;
function quietTemporalRuntime(logger: pino.Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    // Activity failures are the point of many tests; the SDK's warnings about them are noise here.
    installTemporalRuntime(logger, 'ERROR');
  } catch {
    // Another suite in this jest worker installed it already; its logger is just as quiet.
  }
}

/** Polls `fn` until it returns something other than undefined. */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Submits JSON to the API with the test key and returns the parsed body (asserting a 200). */
export async function submitJson(
  stack: Stack,
  path: string,
  body: unknown,
): Promise<{ request_id: string } & Record<string, unknown>> {
  const res = await stack.api(path, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  const json = (await res.json()) as { request_id: string };
  if (res.status !== 200) throw new Error(`submit answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

/** Waits until the request's status is COMPLETED and returns the status body. */
export async function waitCompleted(stack: Stack, appId: string, requestId: string, timeoutMs = 30_000) {
  return eventually(async () => {
    const res = await stack.api(`/${appId}/requests/${requestId}/status?logs=1`);
    const body = (await res.json()) as Record<string, unknown>;
    return body.status === 'COMPLETED' ? body : undefined;
  }, timeoutMs);
}
