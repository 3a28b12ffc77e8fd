/**
 * `fal-queue-temporal/testing`: our workflows and activities in your tests, against the Temporal
 * server your tests already use (`TestWorkflowEnvironment` from `@temporalio/testing`, or any
 * client and worker connection). Models are plain functions, so a test needs no model server.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { Worker, bundleWorkflowCode, type NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import { createActivities } from '../activities';
import { RequestsClient } from '../client/requests';
import { loadConfig, type Config } from '../config';
import { ModelRegistry, modelTaskQueue } from '../models/registry';
import type { ModelContext } from '../models/types';
import { createMetrics } from '../observability/metrics';
import { workerObservability, workflowInterceptorModules } from '../observability/worker-observability';
import { createActivityDeps, quietBundlerLogger, workflowsPath as ourWorkflowsPath } from '../worker-set';

/** What a test environment provides; `TestWorkflowEnvironment` has these fields. */
export interface TestEnvironment {
  client: Client;
  nativeConnection: NativeConnection;
  /** @default 'default' */
  namespace?: string;
}

/** A model for tests: its input in, its output out; throw to fail the run (or check `ctx.signal` to stop on cancel). */
export type TestModel = (input: unknown, ctx: ModelContext) => Promise<unknown>;

/** Options of {@link createTestQueue}. */
export interface TestQueueOptions {
  /** The control task queue; give each test its own. */
  taskQueue: string;
  /** The models by id (`owner/app`), each one a function; every model takes any number of runs at once. */
  models: Record<string, TestModel>;
  /**
   * A workflows module that re-exports `fal-queue-temporal/workflows` beside your own workflows.
   * @default ours alone
   */
  workflowsPath?: string;
  /**
   * A bundle made once for the whole test run, so each test skips bundling: `bundleWorkflowCode` with
   * your `workflowsPath` and our `workflowInterceptorModules`.
   */
  workflowBundle?: WorkflowBundleOption;
  /** Your activities, registered beside ours on the control queue. */
  activities?: object;
  /**
   * Settings, by the names of the queue's environment variables. The defaults suit tests: webhooks may
   * reach loopback receivers (`EGRESS_ALLOW`), files go to a fresh temporary directory (`DATA_DIR`) and
   * search attributes are off, since a test server has none registered.
   */
  env?: Record<string, string>;
}

/** The queue of {@link createTestQueue}: a client for requests and workers to run while the test does its work. */
export interface TestQueue {
  /** Submits requests and reads their state, as the API does. */
  requests: RequestsClient;
  config: Config;
  registry: ModelRegistry;
  /** Runs the control worker and one worker per model until `fn` settles, then shuts them down. */
  runUntil<R>(fn: () => Promise<R>): Promise<R>;
}

/**
 * Our workflows and activities on `options.taskQueue`, with the given functions as models. Bundles the
 * workflow code unless given a bundle (a few seconds; share one with `workflowBundle` across tests).
 *
 * @example
 * const env = await TestWorkflowEnvironment.createLocal();
 * const queue = await createTestQueue(env, { taskQueue: 'test-1', models: { 'acme/echo': async (input) => input } });
 * await queue.runUntil(async () => {
 *   const { requestId } = await queue.requests.submit({ owner: 'me', modelId: 'acme/echo', input: { a: 1 } });
 *   const outcome = await env.client.workflow.getHandle(requestId).result();
 * });
 */
export async function createTestQueue(env: TestEnvironment, options: TestQueueOptions): Promise<TestQueue> {
  const namespace = env.namespace ?? 'default';
  const config = loadConfig({
    TEMPORAL_NAMESPACE: namespace,
    TEMPORAL_TASK_QUEUE: options.taskQueue,
    TEMPORAL_SEARCH_ATTRIBUTES: 'false',
    DATA_DIR: mkdtempSync(join(tmpdir(), 'fal-queue-test-')),
    EGRESS_ALLOW: '127.0.0.0/8,::1/128',
    ...options.env,
  });
  const registry = ModelRegistry.fromObject({
    // The backend is a placeholder that the functions below replace; the registry gives each model its task queue.
    models: Object.keys(options.models).map((id) => ({
      id,
      backend: { kind: 'builtin', name: 'noop' },
      concurrency: 'unlimited',
    })),
  });
  const deps = createActivityDeps(config, registry, env.client);
  deps.runners = new Map(Object.entries(options.models).map(([id, run]) => [id, { run }]));
  const activities = createActivities(deps);
  const workflowBundle =
    options.workflowBundle ??
    (await bundleWorkflowCode({
      workflowsPath: options.workflowsPath ?? ourWorkflowsPath,
      workflowInterceptorModules,
      logger: quietBundlerLogger(),
    }));
  // Our workflows report request ends through sinks, which every worker running them must register.
  const observability = workerObservability(createMetrics(), pino({ level: 'silent' }));
  const common = { connection: env.nativeConnection, namespace };
  const workers = [
    await Worker.create({
      ...common,
      taskQueue: options.taskQueue,
      workflowBundle,
      activities: { ...options.activities, ...activities },
      interceptors: observability.interceptors,
      sinks: observability.sinks,
    }),
    ...(await Promise.all(
      registry.list().map((model) =>
        Worker.create({
          ...common,
          taskQueue: modelTaskQueue(options.taskQueue, model.id),
          activities: { runInference: activities.runInference },
          interceptors: observability.interceptors,
          // The run's logs travel in heartbeats; flushing them every second keeps `logs=1` views current.
          maxHeartbeatThrottleInterval: '1s',
        }),
      ),
    )),
  ];
  const requests = new RequestsClient(env.client, {
    taskQueue: options.taskQueue,
    registry,
    searchAttributes: config.temporal.searchAttributes,
    webhook: {
      scheduleMs: config.webhook.scheduleMs,
      attemptTimeoutMs: config.webhook.attemptTimeoutMs,
      maxPayloadBytes: config.webhook.maxPayloadBytes,
    },
  });
  return {
    requests,
    config,
    registry,
    runUntil: (fn) => runAll(workers, fn),
  };
}

/** Nests `runUntil` so every worker runs while `fn` does, and all of them stop when it settles. */
function runAll<R>(workers: Worker[], fn: () => Promise<R>): Promise<R> {
  const [first, ...rest] = workers;
  if (!first) return fn();
  return first.runUntil(() => runAll(rest, fn));
}
