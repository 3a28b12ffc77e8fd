import { Client, Connection } from '@temporalio/client';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { closed, scheduledActivities, workflowTasksCompleted } from '../helpers/history';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const ONE = 'acme/one-at-a-time';
const TWO = 'acme/two-at-a-time';

/** Queue positions and priorities against a real concurrency limit: the gated backend decides when runs end. */
describe('queue positions per model', () => {
  let one: GatedBackend;
  let two: GatedBackend;
  let stack: Stack;
  let temporal: Client;

  beforeAll(async () => {
    one = await startGatedBackend();
    two = await startGatedBackend();
    stack = await startStack({
      // Positions are checked right after each change: read from the queue itself, not the API's status cache.
      env: { STATUS_CACHE_REFRESH_MS: '0' },
      models: {
        models: [
          { id: ONE, backend: { kind: 'http', url: one.url }, queue: 'admission-workflow', concurrency: 1 },
          // Each runner process could take 5 at once; the model's limit of 2 holds across both processes below.
          {
            id: TWO,
            backend: { kind: 'http', url: two.url },
            queue: 'admission-workflow',
            concurrency: 2,
            runnerConcurrency: 5,
          },
        ],
      },
    });
    // A second runner process (in-process here) polling the same model queues.
    await stack.startWorkers();
    temporal = new Client({ connection: await Connection.connect({ address: stack.config.temporal.address! }) });
  });
  afterAll(async () => {
    await stack?.stop();
    await temporal?.connection.close();
    await one?.close();
    await two?.close();
  });

  const status = async (app: string, id: string) => {
    const res = await stack.api(`/${app}/requests/${id}/status`);
    return (await res.json()) as { status: string; queue_position?: number };
  };
  const statusIs = (app: string, id: string, wanted: string) =>
    eventually(async () => ((await status(app, id)).status === wanted ? true : undefined));
  const positions = (app: string, ids: string[]) =>
    Promise.all(ids.map(async (id) => (await status(app, id)).queue_position));
  const submit = async (app: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await stack.api(`/${app}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { request_id: string; queue_position: number };
  };

  it('numbers waiting requests 0..n-1 in submit order and moves each down as the queue drains', async () => {
    const running = await submitJson(stack, `/${ONE}`, { n: 0 });
    expect(running.queue_position).toBe(0);
    await statusIs(ONE, running.request_id, 'IN_PROGRESS');

    const waiting = [];
    for (let n = 1; n <= 4; n++) waiting.push(await submit(ONE, { n }));
    expect(waiting.map((w) => w.queue_position)).toEqual([0, 1, 2, 3]);
    const ids = waiting.map((w) => w.request_id);
    expect(await positions(ONE, ids)).toEqual([0, 1, 2, 3]);

    for (let done = 0; done < ids.length; done++) {
      one.release({ n: done });
      await statusIs(ONE, ids[done]!, 'IN_PROGRESS');
      const rest = ids.slice(done + 1);
      expect(await positions(ONE, rest)).toEqual(rest.map((_, i) => i));
    }
    one.release({ n: 4 });
    await waitCompleted(stack, ONE, ids[3]!);
    // The backend ran them one at a time, in submit order.
    expect(one.requests.map((r) => (r.json as { n: number }).n)).toEqual([0, 1, 2, 3, 4]);
  });

  it('takes a cancelled waiting request out of the line: those behind it move up, it never runs', async () => {
    const before = one.requests.length;
    const running = await submit(ONE, { c: 'running' });
    await statusIs(ONE, running.request_id, 'IN_PROGRESS');
    const [a, b, c] = [await submit(ONE, { c: 'a' }), await submit(ONE, { c: 'b' }), await submit(ONE, { c: 'c' })];
    expect(
      await positions(
        ONE,
        [a, b, c].map((s) => s.request_id),
      ),
    ).toEqual([0, 1, 2]);

    const cancel = await stack.api(`/${ONE}/requests/${a.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    await statusIs(ONE, a.request_id, 'COMPLETED');
    // Its workflow closed without ever scheduling a run: final, whenever it is checked.
    await closed(temporal, a.request_id);
    expect(await scheduledActivities(temporal, a.request_id)).not.toContain('runInference');
    expect(
      await positions(
        ONE,
        [b, c].map((s) => s.request_id),
      ),
    ).toEqual([0, 1]);

    for (let i = 1; i <= 3; i++) {
      await one.nth(before + i);
      one.release();
    }
    await waitCompleted(stack, ONE, c.request_id);
    expect(one.requests.slice(before).map((r) => (r.json as { c: string }).c)).toEqual(['running', 'b', 'c']);
  });

  it('starts low-priority requests only after every waiting normal one', async () => {
    const before = one.requests.length;
    const running = await submit(ONE, { p: 'running' });
    await statusIs(ONE, running.request_id, 'IN_PROGRESS');

    const low1 = await submit(ONE, { p: 'low-1' }, { 'x-fal-queue-priority': 'low' });
    const normal1 = await submit(ONE, { p: 'normal-1' });
    const low2 = await submit(ONE, { p: 'low-2' }, { 'x-fal-queue-priority': 'low' });
    const normal2 = await submit(ONE, { p: 'normal-2' }, { 'x-fal-queue-priority': 'normal' });
    // A later normal request moves ahead of the waiting low ones.
    expect([low1, normal1, low2, normal2].map((s) => s.queue_position)).toEqual([0, 0, 2, 1]);
    expect(
      await positions(
        ONE,
        [normal1, normal2, low1, low2].map((s) => s.request_id),
      ),
    ).toEqual([0, 1, 2, 3]);

    for (let i = 0; i < 5; i++) {
      await one.nth(before + i + 1);
      one.release();
    }
    await waitCompleted(stack, ONE, low2.request_id);
    expect(one.requests.slice(before).map((r) => (r.json as { p: string }).p)).toEqual([
      'running',
      'normal-1',
      'normal-2',
      'low-1',
      'low-2',
    ]);
  });

  it('holds a limit of two across two runner processes, and refuses a bad priority with 422', async () => {
    const submitted = [];
    for (let n = 0; n < 5; n++) submitted.push(await submit(TWO, { n }));
    expect(submitted.map((s) => s.queue_position)).toEqual([0, 0, 0, 1, 2]);
    await two.nth(2);
    // Ten runner slots are polling, yet the other three wait. Each waiting request's workflow has taken its first
    // decision (it is in its history once the first workflow task completed) and scheduled no run: it waits for the
    // queue's signal, which no free slot can send while the backend holds both runs. So no wall-clock wait is needed
    // to know that no third run is on its way.
    for (const waiting of submitted.slice(2)) {
      await workflowTasksCompleted(temporal, waiting.request_id);
      expect(await scheduledActivities(temporal, waiting.request_id)).not.toContain('runInference');
    }
    expect(two.requests).toHaveLength(2);
    expect(
      await positions(
        TWO,
        submitted.slice(2).map((s) => s.request_id),
      ),
    ).toEqual([0, 1, 2]);

    two.release();
    await two.nth(3);
    expect(
      await positions(
        TWO,
        submitted.slice(3).map((s) => s.request_id),
      ),
    ).toEqual([0, 1]);
    for (const n of [4, 5]) {
      two.release();
      await two.nth(n);
      expect(
        await positions(
          TWO,
          submitted.slice(n).map((s) => s.request_id),
        ),
      ).toEqual(submitted.slice(n).map((_, i) => i));
    }
    two.release();
    two.release();
    await Promise.all(submitted.map((s) => waitCompleted(stack, TWO, s.request_id)));
    expect(two.requests).toHaveLength(5);

    const bad = await stack.api(`/${TWO}`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', 'x-fal-queue-priority': 'urgent' },
    });
    expect(bad.status).toBe(422);
  });
});
