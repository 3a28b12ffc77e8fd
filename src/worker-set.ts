import { Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities, type ActivityDeps } from './activities';
import { ensureFileSweeper } from './client/file-sweeper';
import { createDataConverter, payloadConverterPath } from './codec';
import { defaultPublicBaseUrl, type Config } from './config';
import { createEgressAgent } from './egress/agent';
import { EgressPolicy } from './egress/policy';
import { createInputFetcher } from './models/input-files';
import { modelTaskQueue, runnerConcurrency, type ModelRegistry } from './models/registry';
import { createModelRunners, type RunnerOptions } from './models/runners';
import { processMetrics } from './observability/metrics';
import { startMetricsServer, type MetricsServer } from './observability/metrics-server';
import {
  workerObservability,
  workflowInterceptorModules,
  type WorkerObservability,
} from './observability/worker-observability';
import { createFileStore, type FileStore } from './storage';
import { connectToTemporal } from './temporal/connection';
import { readDeliveryBody } from './webhooks/deliveries';
import { WebhookKeys } from './webhooks/keys';
import { LocalAttemptGate } from './webhooks/local-attempts';
import { WebhookSigner } from './webhooks/signing';

/** The module that exports every workflow (`Worker.create({ workflowsPath })` / `bundleWorkflowCode`). */
export const workflowsPath: string = require.resolve('./workflows');

/** What `bundleWorkflowCode` needs for our workflows, interceptors included (they report request ends as metrics). */
export function workflowBundleOptions(): {
  workflowsPath: string;
  workflowInterceptorModules: string[];
  payloadConverterPath: string;
} {
  // The lossless JSON payload converter runs inside workflows too, so it is part of the bundle.
  return { workflowsPath, workflowInterceptorModules, payloadConverterPath };
}

export interface WorkerSetOptions {
  connection: NativeConnection;
  namespace: string;
  /** The control task queue: request workflows and webhook deliveries. */
  taskQueue: string;
  registry: ModelRegistry;
  activityDeps: ActivityDeps;
  workflowBundle: WorkflowBundleOption;
  /** Which queues to poll and how hard. */
  tuning: Config['worker'];
  /** Metrics and request-scoped logs (see `workerObservability`); omitted = none. */
  observability?: WorkerObservability;
  /**
   * The queue's data converter (`createDataConverter`: lossless JSON, claim check, encryption); every worker and
   * client of the queue must use the same one. Omitted = Temporal's default (large payloads then fail).
   */
  dataConverter?: DataConverter;
}

/**
 * One worker for the control queue and one per served model, each model's on its own task queue so
 * runners can live on any host; `runnerConcurrency` caps the runs one process takes on.
 */
export async function createWorkers(options: WorkerSetOptions): Promise<Worker[]> {
  const activities = createActivities(options.activityDeps);
  const workers: Worker[] = [];
  const common = { connection: options.connection, namespace: options.namespace, dataConverter: options.dataConverter };
  if (options.tuning.control) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: options.taskQueue,
        workflowBundle: options.workflowBundle,
        interceptors: options.observability?.interceptors,
        sinks: options.observability?.sinks,
        activities: {
          deliverWebhook: activities.deliverWebhook,
          sweepExpiredFiles: activities.sweepExpiredFiles,
          // Local activities of the admission queues and the requests waiting in them.
          releaseSlot: activities.releaseSlot,
          grantSlots: activities.grantSlots,
        },
        maxCachedWorkflows: options.tuning.maxCachedWorkflows,
        maxConcurrentWorkflowTaskExecutions: options.tuning.maxConcurrentWorkflowTasks,
        maxConcurrentActivityTaskExecutions: options.tuning.maxConcurrentActivities,
      }),
    );
  }
  const models = modelsToServe(options.registry, options.tuning.models);
  for (const model of models) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: modelTaskQueue(options.taskQueue, model.id),
        activities: { runInference: activities.runInference },
        interceptors: options.observability?.interceptors,
        maxConcurrentActivityTaskExecutions: runnerConcurrency(model),
        // Heartbeats carry the run's logs and its cancellation; 1 s keeps both prompt.
        maxHeartbeatThrottleInterval: '1s',
        defaultHeartbeatThrottleInterval: '1s',
      }),
    );
  }
  return workers;
}

/**
 * The workflow code workers run: a prebuilt bundle when there is one (production images build it),
 * otherwise bundled once here, at start.
 */
export async function loadWorkflowBundle(path: string | undefined, logger: Logger): Promise<WorkflowBundleOption> {
  if (path) return { codePath: path };
  logger.info('bundling workflow code (set WORKFLOW_BUNDLE_PATH to a prebuilt bundle to skip this)');
  return bundleWorkflowCode({ ...workflowBundleOptions(), logger: quietBundlerLogger(logger) });
}

/** The bundler's logger that passes on only its warnings and errors (its info lines are a page per bundle). */
export function quietBundlerLogger(logger: Pick<Logger, 'warn' | 'error'> | Console = console) {
  return {
    trace: () => undefined,
    debug: () => undefined,
    info: () => undefined,
    warn: (message: string) => logger.warn(message),
    error: (message: string) => logger.error(message),
    log: () => undefined,
  };
}

/**
 * The models named by WORKER_MODELS, refusing names the registry does not know. Models of backend kind
 * `temporal` are never served here: an external worker polls their task queue, and a worker of ours on
 * the same queue would take their runs.
 */
function modelsToServe(registry: ModelRegistry, wanted: readonly string[] | '*') {
  if (wanted === '*') return registry.list().filter((model) => model.backend.kind !== 'temporal');
  return wanted.map((id) => {
    const model = registry.get(id);
    if (!model) throw new Error(`WORKER_MODELS names ${id}, which is not in the models file`);
    if (model.backend.kind === 'temporal') {
      throw new Error(
        `WORKER_MODELS names ${id}, whose backend kind is "temporal": its runner is an external Temporal worker`,
      );
    }
    return model;
  });
}

export interface RunningWorkers {
  workers: Worker[];
  /** The workers' connection, which an API in the same process may share (`startServer`'s `workerConnection`). */
  connection: NativeConnection;
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Stops polling, lets in-flight tasks finish, closes the connection. */
  stop(): Promise<void>;
  /** Where this process serves `/metrics` and `/healthz`, when METRICS_PORT is set. */
  metricsUrl?: string;
}

/** Connects to Temporal and runs the control worker and/or model runners this process is configured for. */
export async function startWorkers(
  config: Config,
  registry: ModelRegistry,
  logger: Logger,
  runnerOptions: RunnerOptions = {},
): Promise<RunningWorkers> {
  const connection = await connectToTemporal(config.temporal, (options) => NativeConnection.connect(options));
  const fileStore = createFileStore(config, defaultPublicBaseUrl(config));
  const dataConverter = createDataConverter(config, fileStore.payloads);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const workers = await createWorkers({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    registry,
    workflowBundle: await loadWorkflowBundle(config.worker.workflowBundlePath, logger),
    tuning: config.worker,
    observability: workerObservability(processMetrics(), logger),
    activityDeps: createActivityDeps(config, registry, client, { logger, runnerOptions, fileStore }),
    dataConverter,
  });
  if (config.worker.control) {
    // The control worker owns the files' sweeper; creating it is idempotent, so every start may do it.
    await ensureFileSweeper(client, { taskQueue: config.temporal.taskQueue, everyMs: config.files.sweepEveryMs });
  }
  const done = Promise.all(workers.map((w) => w.run())).then(() => undefined);
  let metricsServer: MetricsServer | undefined;
  if (config.metricsPort !== undefined) {
    metricsServer = await startMetricsServer({
      host: config.http.host,
      port: config.metricsPort,
      registry: processMetrics().registry,
      healthy: () => workers.every((w) => w.getState() === 'RUNNING'),
    });
  }
  logger.info({ taskQueues: workers.map((w) => w.options.taskQueue), metrics: metricsServer?.url }, 'workers polling');
  let stopping: Promise<void> | undefined;
  return {
    workers,
    connection,
    done,
    metricsUrl: metricsServer?.url,
    stop() {
      stopping ??= (async () => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await metricsServer?.close();
        await done;
        await connection.close();
      })();
      return stopping;
    },
  };
}

/**
 * The activities' dependencies as {@link startWorkers} builds them from configuration: model runners,
 * the file store, the input fetcher and the webhook sender. Workers of an embedding application pass
 * the result to `createActivities`; `client` reads large webhook bodies from delivery inputs.
 */
export function createActivityDeps(
  config: Config,
  registry: ModelRegistry,
  client: Client,
  options: {
    /** Where egress refusals are logged, with the address tenants are not told. */
    logger?: Logger;
    /** Code-only options of the model runners (tests pass built-in hooks); configuration wins for Cog's webhooks. */
    runnerOptions?: RunnerOptions;
    /** The store outputs go to and `*_url` inputs of its own are read from. @default the configured store */
    fileStore?: FileStore;
  } = {},
): ActivityDeps {
  const { logger, runnerOptions = {} } = options;
  const fileStore = options.fileStore ?? createFileStore(config, defaultPublicBaseUrl(config));
  const runners = createModelRunners(registry, { ...runnerOptions, cogWebhook: config.cogWebhook });
  // Webhooks and model inputs reach only public addresses, unless EGRESS_ALLOW opens more.
  // Tenants are told "not a public address"; which address it was goes to the operator's log only.
  const egress = new EgressPolicy(config.egress.allow, {
    onRefused: (r) =>
      logger?.warn({ host: r.host, address: r.address, address_class: r.addressClass }, 'egress refused'),
  });
  const fetchInput = createInputFetcher({
    maxBytes: config.inputs.maxBytes,
    timeoutMs: config.inputs.timeoutMs,
    egress,
    readStoreFile: (url) => fileStore.readByUrl(url),
  });
  return {
    runners,
    fileStore,
    fetchInput,
    webhook: {
      userAgent: 'fal-queue-temporal-webhooks/0.1',
      dispatcher: createEgressAgent(egress),
      signer: new WebhookSigner(() => WebhookKeys.open(config.webhook.keysDir)),
      loadBody: (execution) => readDeliveryBody(client, execution),
      localAttempts: new LocalAttemptGate({ maxInFlight: config.webhook.localAttempts }),
    },
    admission: { client },
  };
}
