import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';
import type { DataConverter } from '@temporalio/common';
import type { Logger } from 'pino';
import { payloadConverterPath } from './codec/data-converter';
import { createActivities, type ActivityDeps } from './activities';
import type { Config } from './config';
import { modelTaskQueue, runnerConcurrency, type ModelRegistry } from './models/registry';
import { workflowInterceptorModules, type WorkerObservability } from './observability/worker-observability';

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
  /**
   * The queue's data converter (`createDataConverter`: lossless JSON, claim check); every worker and client of the
   * queue must use the same one. Omitted = Temporal's default (large payloads then fail).
   */
  dataConverter?: DataConverter;
  /** Metrics and request-scoped logs (see `workerObservability`); omitted = none. */
  observability?: WorkerObservability;
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
