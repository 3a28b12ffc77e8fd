import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import pino from 'pino';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { createTestQueue, type TestEnvironment } from '../../src/embedding/testing';
import type { RequestOutcome } from '../../src/workflows/shared/request';

describe('fal-queue-temporal/testing: our workflows in an application test, with models as functions', () => {
  let env: TestEnvironment;

  beforeAll(async () => {
    const address = process.env.TEST_TEMPORAL_ADDRESS!;
    try {
      // The SDK logs every worker state change otherwise.
      installTemporalRuntime(pino({ level: 'silent' }), 'ERROR');
    } catch {
      // Installed already in this jest worker.
    }
    env = {
      client: new Client({ connection: await Connection.connect({ address }) }),
      nativeConnection: await NativeConnection.connect({ address }),
    };
  });
  afterAll(async () => {
    await env?.client.connection.close();
    await env?.nativeConnection.close();
  });

  it("runs a request through a model function, beside the application's own workflow and activity", async () => {
    const seen: unknown[] = [];
    const queue = await createTestQueue(env, {
      taskQueue: `testing-${randomUUID()}`,
      models: {
        'acme/echo': async (input, ctx) => {
          seen.push(input);
          ctx.log('echoing');
          return { echoed: input };
        },
      },
      // Bundled here from the application's workflows module, which re-exports ours.
      workflowsPath: require.resolve('./fixtures/their-workflows'),
      activities: { greet: async (name: string) => `hello, ${name}` },
    });
    await queue.runUntil(async () => {
      const { requestId } = await queue.requests.submit({ owner: 'me', modelId: 'acme/echo', input: { a: 1 } });
      const outcome = await env.client.workflow.getHandle<() => Promise<RequestOutcome>>(requestId).result();
      expect(outcome).toMatchObject({ status: 'OK', output: { echoed: { a: 1 } } });
      expect(outcome.logs.map((l) => l.message)).toContain('echoing');
      expect(seen).toEqual([{ a: 1 }]);

      const greeting = await env.client.workflow.execute('theirGreeting', {
        taskQueue: queue.config.temporal.taskQueue,
        workflowId: `greeting-${randomUUID()}`,
        args: ['tester'],
      });
      expect(greeting).toBe('hello, tester');
    });
  });

  it('ends a request with the error a model function throws, through the prebuilt bundle of a test run', async () => {
    const queue = await createTestQueue(env, {
      taskQueue: `testing-${randomUUID()}`,
      models: {
        'acme/broken': async () => {
          throw new Error('out of GPU memory');
        },
      },
      workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
    });
    await queue.runUntil(async () => {
      const { requestId } = await queue.requests.submit({
        owner: 'me',
        modelId: 'acme/broken',
        input: {},
        noRetry: true,
      });
      const outcome = await env.client.workflow.getHandle<() => Promise<RequestOutcome>>(requestId).result();
      expect(outcome).toMatchObject({ status: 'ERROR' });
      expect(JSON.stringify(outcome)).toContain('out of GPU memory');
    });
  });
});
