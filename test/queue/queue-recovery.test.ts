import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { AdmissionClient } from '../../src/client/admission-client';
import { admissionQueue } from '../../src/workflows';
import { admissionWorkflowId } from '../../src/workflows/admission-queue/messages';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { eventually, startStack, waitCompleted, type Stack } from '../helpers/stack';

const APP = 'acme/recovering';

/**
 * The admission queue keeps its promises when things go wrong: it hands over to a new run under load, and a slot
 * whose request never shows up (or was terminated by an operator) comes back. The queue is started here with short
 * checks and a tiny history budget, so all of that happens within seconds.
 */
describe('admission queue recovery', () => {
  let backend: GatedBackend;
  let stack: Stack;
  let connection: Connection;
  let client: Client;
  let queueId: string;

  beforeAll(async () => {
    backend = await startGatedBackend();
    stack = await startStack({
      // Positions are checked right after each change: read from the queue itself, not the API's status cache.
      env: { STATUS_CACHE_REFRESH_MS: '0' },
      models: {
        models: [{ id: APP, backend: { kind: 'http', url: backend.url }, queue: 'admission-workflow', concurrency: 1 }],
      },
    });
    connection = await Connection.connect({ address: stack.config.temporal.address! });
    client = new Client({ connection });
    const taskQueue = stack.config.temporal.taskQueue;
    queueId = admissionWorkflowId(taskQueue, APP);
    await client.workflow.start(admissionQueue, {
      workflowId: queueId,
      taskQueue,
      args: [
        {
          modelId: APP,
          capacity: 1,
          continueAsNewAfterEvents: 40,
          timing: { checkHoldersEveryMs: 500, grantRetryMs: 200, giveUpAfterMs: 1000 },
        },
      ],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await connection?.close();
    await backend?.close();
  });

  const submit = async (body: unknown) => {
    const res = await stack.api(`/${APP}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { request_id: string; queue_position: number };
  };
  const status = async (id: string) => {
    const res = await stack.api(`/${APP}/requests/${id}/status`);
    return (await res.json()) as { status: string; queue_position?: number };
  };
  const positions = (ids: string[]) => Promise.all(ids.map(async (id) => (await status(id)).queue_position));
  // Waits for the event with the suite's default patience: a slot freed by the queue's own checks (holders every
  // 500 ms, a ghost given up after 1 s) comes later on a loaded machine, never sooner.
  const running = (id: string) =>
    eventually(async () => ((await status(id)).status === 'IN_PROGRESS' ? true : undefined));
  const bodies = () => backend.requests.map((r) => (r.json as { n: string }).n);
  // IN_PROGRESS means a runner took the run, not that its call has reached the backend yet: a release must wait for
  // the call itself, or it finds nothing held (seen on a machine loaded by a bench run).
  const arrived = (n: string) => eventually(async () => (bodies().includes(n) ? true : undefined));

  it('keeps positions exact while the queue continues as new under load', async () => {
    const first = await submit({ n: 'can-0' });
    await running(first.request_id);
    await arrived('can-0');
    const waiting = [];
    for (let i = 1; i <= 8; i++) waiting.push(await submit({ n: `can-${i}` }));
    expect(waiting.map((w) => w.queue_position)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const ids = waiting.map((w) => w.request_id);
    for (let done = 0; done < ids.length; done++) {
      backend.release();
      await running(ids[done]!);
      await arrived(`can-${done + 1}`);
      expect(await positions(ids.slice(done + 1))).toEqual(ids.slice(done + 1).map((_, i) => i));
    }
    backend.release();
    await waitCompleted(stack, APP, ids[7]!);
    expect(bodies()).toEqual(Array.from({ length: 9 }, (_, i) => `can-${i}`));
    // It did hand over: the queue has had several runs.
    const runs = await eventually(async () => {
      const { count } = await client.workflow.count(`WorkflowId = "${queueId}"`);
      return count > 2 ? count : undefined;
    });
    expect(runs).toBeGreaterThan(2);
  });

  it('gives back a slot taken by a submit that never started its request', async () => {
    // What an API that died between the enqueue and starting the workflow leaves behind.
    const admission = new AdmissionClient(client, stack.config.temporal.taskQueue);
    const ghost = await admission.enqueue(
      { id: APP, capacity: 1, queueLimit: 100 },
      {
        requestId: randomUUID(),
        priority: 'normal',
      },
    );
    expect(ghost).toEqual({ admitted: true });

    const real = await submit({ n: 'after-ghost' });
    expect(real.queue_position).toBe(0);
    await running(real.request_id);
    await arrived('after-ghost');
    backend.release();
    const done = await waitCompleted(stack, APP, real.request_id);
    expect(done.error_type).toBeUndefined();
  });

  it('gives back the slot of a request an operator terminated', async () => {
    const doomed = await submit({ n: 'terminated' });
    await running(doomed.request_id);
    await arrived('terminated');
    const next = await submit({ n: 'after-terminated' });
    expect(next.queue_position).toBe(0);

    await client.workflow.getHandle(doomed.request_id).terminate('operator');
    await running(next.request_id);
    await eventually(async () => (bodies().includes('after-terminated') ? true : undefined));
    backend.release(); // the terminated run's call, abandoned
    backend.release();
    const done = await waitCompleted(stack, APP, next.request_id);
    expect(done.error_type).toBeUndefined();
  });
});
