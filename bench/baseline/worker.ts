import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { createBaselineActivities } from './activities';

/**
 * The baseline's worker process, laid out like ours: one worker for the workflow and the webhook
 * activity on the control queue, one for the model's queue, on one connection, with the same tuning
 * (`WORKER_*` variables, read through our config) and `BASELINE_MODEL_CONCURRENCY` model slots.
 * Needs `TEMPORAL_ADDRESS`, `TEMPORAL_TASK_QUEUE` and `WORKFLOW_BUNDLE_PATH`.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'baseline-worker');
  installTemporalRuntime(logger);
  if (!config.worker.workflowBundlePath) throw new Error('WORKFLOW_BUNDLE_PATH is required');
  const modelConcurrency = Number(process.env.BASELINE_MODEL_CONCURRENCY ?? 1);
  const connection = await NativeConnection.connect({ address: config.temporal.address ?? '127.0.0.1:7233' });
  const activities = createBaselineActivities('baseline/0.1', config.webhook.attemptTimeoutMs);
  const common = { connection, namespace: config.temporal.namespace };
  const workers = [
    await Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: config.worker.workflowBundlePath },
      activities: { postWebhook: activities.postWebhook },
      maxCachedWorkflows: config.worker.maxCachedWorkflows,
      maxConcurrentWorkflowTaskExecutions: config.worker.maxConcurrentWorkflowTasks,
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
    }),
    await Worker.create({
      ...common,
      taskQueue: `${config.temporal.taskQueue}:model:noop`,
      activities: { noopInference: activities.noopInference },
      maxConcurrentActivityTaskExecutions: modelConcurrency,
    }),
  ];
  const done = Promise.all(workers.map((w) => w.run()));
  logger.info('workers polling');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => workers.forEach((w) => w.shutdown()));
  }
  await done;
  await connection.close();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
