import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import * as falQueue from '../../src';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually } from '../helpers/stack';
import * as theirActivities from './fixtures/their-activities';

const MODEL = 'acme/embedded';

describe('embedding: our workflows and activities in a worker the application creates itself', () => {
  let backend: LoopbackServer;
  let receiver: LoopbackServer;

  beforeAll(async () => {
    backend = await startLoopbackServer((rec, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echoed: rec.json }));
    });
    receiver = await startLoopbackServer(respondJson(204, null));
  });
  afterAll(async () => {
    await backend?.close();
    await receiver?.close();
  });

  it('runs their own workflow and our request (with its webhook) through one worker of theirs', async () => {
    const address = process.env.TEST_TEMPORAL_ADDRESS!;
    const theirQueue = `their-app-${randomUUID()}`;
    const logger = pino({ level: 'silent' });
    try {
      installTemporalRuntime(logger, 'ERROR');
    } catch {
      // Installed already in this jest worker.
    }

    // The application's configuration: its task queue is our control queue.
    const config = falQueue.loadConfig({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TASK_QUEUE: theirQueue,
      DATA_DIR: mkdtempSync(join(process.env.TEST_TMP_DIR!, 'embed-')),
      WEBHOOK_SCHEDULE: '0s,300ms',
      EGRESS_ALLOW: '127.0.0.1/32',
    });
    const registry = falQueue.ModelRegistry.fromObject({
      models: [{ id: MODEL, backend: { kind: 'http', url: backend.url }, concurrency: 'unlimited' }],
    });

    const connection = await NativeConnection.connect({ address });
    const client = new Client({ connection: await Connection.connect({ address }) });
    const activities = falQueue.createActivities(falQueue.createActivityDeps(config, registry, client));
    const observability = falQueue.workerObservability(falQueue.createMetrics(), logger);

    // Their worker: their workflows and ours (re-exported from their workflows file), their activities and ours.
    const control = await Worker.create({
      connection,
      taskQueue: theirQueue,
      workflowsPath: require.resolve('./fixtures/their-workflows'),
      activities: { ...theirActivities, ...activities },
      interceptors: { ...observability.interceptors, workflowModules: falQueue.workflowInterceptorModules },
      sinks: observability.sinks,
    });
    // Inference runs on the model's own task queue.
    const runner = await Worker.create({
      connection,
      taskQueue: falQueue.modelTaskQueue(theirQueue, MODEL),
      activities: { runInference: activities.runInference },
      interceptors: observability.interceptors,
    });

    const requests = new falQueue.RequestsClient(client, {
      taskQueue: theirQueue,
      registry,
      webhook: { scheduleMs: config.webhook.scheduleMs, attemptTimeoutMs: config.webhook.attemptTimeoutMs },
      searchAttributes: true,
    });
    try {
      await Promise.race([
        control.runUntil(
          runner.runUntil(async () => {
            const greeting = await client.workflow.execute('theirGreeting', {
              taskQueue: theirQueue,
              workflowId: `greeting-${randomUUID()}`,
              args: ['embedder'],
            });
            expect(greeting).toBe('hello, embedder');

            const { requestId } = await requests.submit({
              owner: 'them',
              modelId: MODEL,
              input: { prompt: 'inside their worker' },
              webhookUrl: `${receiver.url}/hook`,
            });
            const view = await eventually(async () => {
              const v = await requests.get(requestId, 'them');
              return v?.status === falQueue.QueueStatus.Completed ? v : undefined;
            });
            expect(view.status === falQueue.QueueStatus.Completed && view.outcome).toMatchObject({
              status: 'OK',
              output: { echoed: { prompt: 'inside their worker' } },
            });
            const hook = await receiver.nth(1);
            expect(hook.json).toMatchObject({ request_id: requestId, status: 'OK' });
            expect((await client.workflow.getHandle(requestId).describe()).type).toBe('inferenceRequest');
          }),
        ),
        new Promise((_, reject) => setTimeout(() => reject(new Error('embedding test timed out')), 50_000)),
      ]);
    } finally {
      await client.connection.close();
      await connection.close();
    }
  });
});
