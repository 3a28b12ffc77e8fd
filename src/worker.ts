import { Client } from '@temporalio/client';
import type { ActivityDeps } from './activities';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import { ensureFileSweeper } from './client/file-sweeper';
import { loadConfig, defaultPublicBaseUrl, type Config } from './config';
import { createLogger } from './logger';
import { createInputFetcher } from './models/input-files';
import { ModelRegistry } from './models/registry';
import { createModelRunners } from './models/runners';
import { createDataConverter } from './codec/data-converter';
import { createFileStore, type FileStore } from './storage';
import { connectToTemporal } from './temporal/connection';
import { installTemporalRuntime } from './temporal/runtime';
import { createWorkers, loadWorkflowBundle } from './workers';
import { createEgressFetch } from './egress/agent';
import { EgressPolicy } from './egress/policy';
import { readDeliveryBody } from './webhooks/deliveries';
import { WebhookKeys } from './webhooks/keys';
import { WebhookSigner } from './webhooks/signing';
import { processMetrics } from './observability/metrics';
import { startMetricsServer, type MetricsServer } from './observability/metrics-server';
import { workerObservability } from './observability/worker-observability';

export interface RunningWorkers {
  workers: Worker[];
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Stops polling, lets in-flight tasks finish, closes the connection. */
  stop(): Promise<void>;
  /** Where this process serves `/metrics` and `/healthz`, when METRICS_PORT is set. */
  metricsUrl?: string;
}

/** Connects to Temporal and runs the control worker and/or model runners this process is configured for. */
export async function startWorkers(config: Config, registry: ModelRegistry, logger: Logger): Promise<RunningWorkers> {
  const connection = await connectToTemporal(config.temporal, (options) => NativeConnection.connect(options));
  const fileStore = createFileStore(config, defaultPublicBaseUrl(config));
  const dataConverter = createDataConverter({
    payloads: fileStore.payloads,
    claimCheckThresholdBytes: config.storage.claimCheckThresholdBytes,
  });
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const workers = await createWorkers({
    dataConverter,
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    registry,
    workflowBundle: await loadWorkflowBundle(config.worker.workflowBundlePath, logger),
    tuning: config.worker,
    observability: workerObservability(processMetrics(), logger),
    activityDeps: createActivityDeps(config, registry, client, fileStore),
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
  fileStore: FileStore = createFileStore(config, defaultPublicBaseUrl(config)),
): ActivityDeps {
  const runners = createModelRunners(registry, { cogWebhook: config.cogWebhook });
  // Webhooks and model inputs reach only public addresses, unless EGRESS_ALLOW opens more.
  const egress = new EgressPolicy(config.egress.allow);
  const egressFetch = createEgressFetch(egress);
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
      fetch: egressFetch,
      signer: new WebhookSigner(() => WebhookKeys.open(config.webhook.keysDir)),
      loadBody: (execution) => readDeliveryBody(client, execution),
    },
    admission: { client },
  };
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'worker');
  installTemporalRuntime(logger);
  const registry = ModelRegistry.load(config.modelsFile, process.env);
  const running = await startWorkers(config, registry, logger);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down workers');
      void running.stop();
    });
  }
  await running.done;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
