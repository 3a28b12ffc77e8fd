import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import express from 'express';
import {
  ModelRegistry,
  VERSION,
  connectToTemporal,
  createActivities,
  createActivityDeps,
  createLogger,
  ensureFileSweeper,
  loadConfig,
  modelTaskQueue,
  processMetrics,
  workerObservability,
  workflowInterceptorModules,
} from 'fal-queue-temporal';
import { createQueueApi } from 'fal-queue-temporal/api';
import * as activities from './activities';
import type { greeting } from './workflows';

async function main(): Promise<void> {
  // The queue's settings come from the same environment variables as its own server and worker:
  // TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, MODELS_FILE, API_KEYS, DATA_DIR, HOST, PORT, ...
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'my-app');
  const registry = ModelRegistry.load(config.modelsFile, process.env);
  const { namespace, taskQueue } = config.temporal;

  // One client connection and one worker connection for the whole process.
  const connection = await connectToTemporal(config.temporal, (options) => Connection.connect(options));
  const client = new Client({ connection, namespace });
  const workerConnection = await connectToTemporal(config.temporal, (options) => NativeConnection.connect(options));

  // One workflow bundle: the application's workflows and the queue's (./workflows re-exports them).
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./workflows'),
    workflowInterceptorModules,
  });
  const queueActivities = createActivities(createActivityDeps(config, registry, client));
  const observability = workerObservability(processMetrics(), logger);

  // One worker runs both: the application's workflows and activities, the queue's requests and webhooks.
  const worker = await Worker.create({
    connection: workerConnection,
    namespace,
    taskQueue,
    workflowBundle,
    activities: { ...activities, ...queueActivities },
    interceptors: observability.interceptors,
    sinks: observability.sinks,
  });
  // Inference runs on each model's own task queue, so that runners can also live on other hosts.
  const runners = await Promise.all(
    registry.list().map((model) =>
      Worker.create({
        connection: workerConnection,
        namespace,
        taskQueue: modelTaskQueue(taskQueue, model.id),
        activities: { runInference: queueActivities.runInference },
        interceptors: observability.interceptors,
      }),
    ),
  );
  // Deletes output files once they expire (idempotent: every start may do it).
  await ensureFileSweeper(client, { taskQueue, everyMs: config.files.sweepEveryMs });

  // The application's own HTTP app, with the queue API mounted at the root (fal's paths).
  const api = await createQueueApi({ connection, config, registry, logger });
  const app = express();
  app.get('/greeting/:name', async (req, res) => {
    const text = await client.workflow.execute<typeof greeting>('greeting', {
      taskQueue,
      workflowId: `greeting-${randomUUID()}`,
      args: [req.params.name],
    });
    res.json({ greeting: text });
  });
  app.use(api.app);
  const server = app.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  logger.info({ url: `http://${config.http.host}:${port}`, version: VERSION }, 'my app listening');

  // SIGTERM: stop taking HTTP requests, then let the workers finish their tasks, then close the connections.
  process.once('SIGTERM', () => {
    api.statusWatchers.close();
    server.close();
    server.closeIdleConnections();
    for (const w of [worker, ...runners]) w.shutdown();
  });
  await Promise.all([worker, ...runners].map((w) => w.run()));
  await api.close();
  await workerConnection.close();
  await connection.close();
  logger.info('my app stopped');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
