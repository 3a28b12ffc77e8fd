import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import { loadConfig, defaultPublicBaseUrl, type Config } from './config';
import { createLogger } from './logger';
import { createInputFetcher } from './models/input-files';
import { ModelRegistry } from './models/registry';
import { createModelRunners } from './models/runners';
import { LocalFileStore } from './storage/file-store';
import { temporalConnectionOptions } from './temporal/connection';
import { installTemporalRuntime } from './temporal/runtime';
import { createWorkers, loadWorkflowBundle } from './workers';
import { join } from 'node:path';

export interface RunningWorkers {
  workers: Worker[];
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Stops polling, lets in-flight tasks finish, closes the connection. */
  stop(): Promise<void>;
}

/** Connects to Temporal and runs the control worker and/or model runners this process is configured for. */
export async function startWorkers(config: Config, registry: ModelRegistry, logger: Logger): Promise<RunningWorkers> {
  const runners = createModelRunners(registry);
  const connection = await NativeConnection.connect(temporalConnectionOptions(config.temporal));
  const fetchInput = createInputFetcher({ maxBytes: config.inputs.maxBytes, timeoutMs: config.inputs.timeoutMs });
  const workers = await createWorkers({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    registry,
    workflowBundle: await loadWorkflowBundle(config.worker.workflowBundlePath, logger),
    tuning: config.worker,
    activityDeps: {
      runners,
      fileStore: new LocalFileStore(join(config.dataDir, 'files'), defaultPublicBaseUrl(config)),
      fetchInput,
      webhook: { attemptTimeoutMs: config.webhook.attemptTimeoutMs, userAgent: 'fal-queue-temporal-webhooks/0.1' },
    },
  });
  const done = Promise.all(workers.map((w) => w.run())).then(() => undefined);
  logger.info({ taskQueues: workers.map((w) => w.options.taskQueue) }, 'workers polling');
  let stopping: Promise<void> | undefined;
  return {
    workers,
    done,
    stop() {
      stopping ??= (async () => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await done;
        await connection.close();
      })();
      return stopping;
    },
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
