import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { ensureTemporalTestServer } from '../../src/temporal/cli';

/** What the workflows reported through the `queueMetrics` sink (sinks are the worker's, so a test can read them). */
export interface SinkCalls {
  requestCompleted: [modelId: string, outcome: string][];
  webhookDeliveryEnded: [result: string, latencyMs: number][];
}

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  taskQueue: string;
  sinkCalls: SinkCalls;
  stop(): Promise<void>;
}

/**
 * The time-skipping test server (the `.venv` binary the bootstrap installs) and one worker on the suite's workflow
 * bundle with the given (mocked) activities: hours of workflow time pass in moments.
 */
export async function startTimeSkipping(activities: WorkerOptions['activities']): Promise<TimeSkipping> {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  } catch {
    // Installed by another suite in this jest worker.
  }
  const path = await ensureTemporalTestServer({ projectRoot: resolve(__dirname, '../..') });
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path } },
  });
  const taskQueue = `ts-${randomUUID()}`;
  const sinkCalls: SinkCalls = { requestCompleted: [], webhookDeliveryEnded: [] };
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
    activities,
    sinks: {
      queueMetrics: {
        requestCompleted: {
          fn: (_info, modelId: string, outcome: string) => void sinkCalls.requestCompleted.push([modelId, outcome]),
        },
        webhookDeliveryEnded: {
          fn: (_info, result: string, latencyMs: number) =>
            void sinkCalls.webhookDeliveryEnded.push([result, latencyMs]),
        },
      },
    },
  });
  const running = worker.run();
  return {
    env,
    taskQueue,
    sinkCalls,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await env.teardown();
    },
  };
}

/** Polls `fn` (a query: it does not let time skip) until it returns something other than undefined. */
export async function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
