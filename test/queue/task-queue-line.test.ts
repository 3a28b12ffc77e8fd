import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { idempotentRequestId } from '../../src/client/requests';
import { TaskQueueLines } from '../../src/client/task-queue-line';
import { modelTaskQueue } from '../../src/models/registry';
import { useStack } from '../helpers/fixtures';
import { scheduledActivities, startedAttempts } from '../helpers/history';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { OTHER_KEY, eventually, waitCompleted } from '../helpers/stack';

const LINE = 'acme/line';
const FAIR = 'acme/fair';
const WEIGHTED = 'acme/weighted';
const OWNERS = { alice: undefined, bob: OTHER_KEY } as const;

/**
 * Requests waiting in their model's task queue (the default `queue`): positions counted per owner's line, `low` behind
 * `normal`, start timeouts, `fal_max_queue_length`, and fairness between owners, on the real dev server.
 */
describe('the task-queue line of a model', () => {
  // The fairness model's backend: holds its first call until released, then answers at once, recording the order.
  // Holds a model's `hold` run until released; answers the others at once, recording the order (`model tag`).
  let fair: LoopbackServer & { order: string[]; hold(): void; releaseFirst(): void };
  beforeAll(async () => {
    let releaseFirst = () => {};
    let first = Promise.resolve();
    const order: string[] = [];
    const server = await startLoopbackServer(async (rec, raw, res) => {
      raw.resume();
      const { tag, model } = rec.json as { tag: string; model: string };
      order.push(`${model} ${tag}`);
      if (tag === 'hold') await first;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    const hold = () => {
      first = new Promise<void>((resolve) => (releaseFirst = resolve));
    };
    fair = Object.assign(server, { order, hold, releaseFirst: () => releaseFirst() });
  });
  afterAll(async () => {
    fair.releaseFirst();
    await fair?.close();
  });

  const fx = useStack({
    models: ({ backend }) => ({
      models: [
        { id: LINE, backend: { kind: 'http', url: backend.url }, concurrency: 1 },
        { id: FAIR, backend: { kind: 'http', url: fair.url }, concurrency: 1, maxQueueLength: 5_000 },
        // Bob's share of this one is three times Alice's.
        { id: WEIGHTED, backend: { kind: 'http', url: fair.url }, concurrency: 1, ownerWeights: { bob: 3 } },
      ],
    }),
  });

  const submit = async (
    app: string,
    body: unknown,
    {
      owner = 'alice',
      headers = {},
      query = '',
    }: { owner?: keyof typeof OWNERS; headers?: Record<string, string>; query?: string } = {},
  ) =>
    fx.stack.api(`/${app}${query}`, {
      method: 'POST',
      body: JSON.stringify(body),
      key: OWNERS[owner],
      headers: { 'content-type': 'application/json', ...headers },
    });
  const accepted = async (res: Response) => {
    const body = (await res.json()) as { request_id: string; queue_position: number };
    if (res.status !== 200) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
    return body.request_id;
  };
  const status = async (id: string, owner: keyof typeof OWNERS = 'alice') => {
    const res = await fx.stack.api(`/${LINE}/requests/${id}/status`, { key: OWNERS[owner] });
    return (await res.json()) as { status: string; queue_position?: number };
  };
  const statusIs = (id: string, wanted: string) =>
    eventually(async () => ((await status(id)).status === wanted ? true : undefined));
  const lines = () => new TaskQueueLines(fx.temporal, fx.stack.config.temporal.taskQueue);
  /** Waits until visibility counts exactly `n` requests of the model as waiting (no runner has them yet). */
  const waitingSettles = (model: string, n: number) =>
    eventually(async () => ((await lines().waiting(model, { limit: Infinity, fresh: true })) === n ? true : undefined));
  /** Waits until the model's task queue holds `n` runs that no runner has taken. */
  const backlogReaches = (model: string, n: number) =>
    eventually(
      async () =>
        (await backlog(
          fx.temporal,
          fx.stack.config.temporal.namespace,
          modelTaskQueue(fx.stack.config.temporal.taskQueue, model),
        )) >= n
          ? true
          : undefined,
      120_000,
      250,
    );
  /** Resolves with the request's id once its run is scheduled (its history says so). */
  const scheduled = async (id: string) => {
    await eventually(async () =>
      (await scheduledActivities(fx.temporal, id)).includes('runInference') ? true : undefined,
    );
    return id;
  };
  const started = () => fx.backend.requests.map((r) => (r.json as { n: string }).n);

  it('numbers an owner’s waiting requests 0..n-1 once visibility has caught up, and moves each down to 0 before it runs', async () => {
    const running = await accepted(await submit(LINE, { n: 'running' }));
    await statusIs(running, 'IN_PROGRESS');
    await waitingSettles(LINE, 0);
    const waiting: string[] = [];
    // The line is in the order the runs reached the task queue: each submit waits for the one before to get there
    // (two submits a few milliseconds apart may reach it in either order; docs/queue.md).
    for (let i = 0; i < 4; i++) waiting.push(await scheduled(await accepted(await submit(LINE, { n: `w${i}` }))));
    // Bob's requests are in a line of their own: they do not count in Alice's positions.
    const bobs = [await accepted(await submit(LINE, { n: 'bob-0' }, { owner: 'bob' }))];

    const positions = async () => Promise.all(waiting.map(async (id) => (await status(id)).queue_position));
    await eventually(async () => ((await positions()).join() === '0,1,2,3' ? true : undefined));
    const bobView = await fx.stack.api(`/${LINE}/requests/${bobs[0]}/status`, { key: OTHER_KEY });
    expect(await bobView.json()).toMatchObject({ status: 'IN_QUEUE', queue_position: 0 });

    // The last one is watched throughout: each read is at most the one before, and it reads 0 before it runs.
    const seen: number[] = [];
    const last = waiting[3]!;
    let runs = 1;
    while (!started().includes('w3')) {
      // Once visibility has caught up, its position is the number of Alice's requests before it not started yet.
      const expected = 3 - started().filter((n) => ['w0', 'w1', 'w2'].includes(n)).length;
      await eventually(async () => {
        const view = await status(last);
        if (view.status === 'IN_QUEUE') seen.push(view.queue_position!);
        return view.queue_position === expected ? true : undefined;
      });
      fx.backend.release();
      await fx.backend.nth(++runs);
    }
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    expect(seen.at(-1)).toBe(0);
    expect(new Set(seen)).toEqual(new Set([3, 2, 1, 0]));
    // Bob's one ran somewhere in between: the owners share the runner by weight.
    while (runs < 6) {
      fx.backend.release();
      await fx.backend.nth(++runs);
    }
    fx.backend.release();
    await waitCompleted(fx.stack, LINE, last);
    expect(started().filter((n) => n.startsWith('w'))).toEqual(['w0', 'w1', 'w2', 'w3']);
  });

  it('starts low-priority requests only after every waiting normal one', async () => {
    const before = fx.backend.requests.length;
    const running = await accepted(await submit(LINE, { n: 'p-running' }));
    await fx.backend.nth(before + 1);
    const low = { headers: { 'x-fal-queue-priority': 'low' } };
    await scheduled(await accepted(await submit(LINE, { n: 'low-1' }, low)));
    await scheduled(await accepted(await submit(LINE, { n: 'normal-1' })));
    await scheduled(await accepted(await submit(LINE, { n: 'low-2' }, low)));
    await scheduled(
      await accepted(await submit(LINE, { n: 'normal-2' }, { headers: { 'x-fal-queue-priority': 'normal' } })),
    );
    // All four wait in the task queue before a slot frees (what "waiting" means for the order asked of them).
    await backlogReaches(LINE, 4);
    for (let i = 1; i <= 4; i++) {
      fx.backend.release();
      await fx.backend.nth(before + 1 + i);
    }
    fx.backend.release();
    expect(started().slice(before)).toEqual(['p-running', 'normal-1', 'normal-2', 'low-1', 'low-2']);
    await waitCompleted(fx.stack, LINE, running);
  });

  it('ends a request not started within x-fal-request-timeout with a user timeout; its run never starts', async () => {
    const before = fx.backend.requests.length;
    const running = await accepted(await submit(LINE, { n: 't-running' }));
    await fx.backend.nth(before + 1);
    const late = await accepted(await submit(LINE, { n: 't-late' }, { headers: { 'x-fal-request-timeout': '1' } }));
    const done = await waitCompleted(fx.stack, LINE, late);
    expect(done).toMatchObject({ status: 'COMPLETED', error_type: 'request_timeout' });
    const result = await fx.stack.api(`/${LINE}/requests/${late}`);
    expect(result.status).toBe(504);
    expect(await startedAttempts(fx.temporal, late, 'runInference')).toEqual([]);
    fx.backend.release();
    await waitCompleted(fx.stack, LINE, running);
    expect(started().slice(before)).toEqual(['t-running']);
  });

  it('answers 429 when the line is as long as fal_max_queue_length, and creates nothing', async () => {
    const before = fx.backend.requests.length;
    const running = await accepted(await submit(LINE, { n: 'l-running' }, { query: '?fal_max_queue_length=0' }));
    await fx.backend.nth(before + 1);
    await waitingSettles(LINE, 0);
    const first = await accepted(await submit(LINE, { n: 'l-1' }, { query: '?fal_max_queue_length=1' }));
    // The documented tolerance: the limit holds against what visibility counts, which is a moment behind the submit.
    await waitingSettles(LINE, 1);

    const keys = { refused: randomUUID(), zero: randomUUID() };
    const keyed = (key: string) => ({ headers: { 'idempotency-key': key } });
    const refused = await submit(LINE, { n: 'refused' }, { ...keyed(keys.refused), query: '?fal_max_queue_length=1' });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/queue of acme\/line is full/i);
    const zero = await submit(LINE, { n: 'refused-too' }, { ...keyed(keys.zero), query: '?fal_max_queue_length=0' });
    expect(zero.status).toBe(429);
    for (const key of Object.values(keys)) {
      const handle = fx.temporal.workflow.getHandle(idempotentRequestId('alice', LINE, key));
      await expect(handle.describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    }
    const second = await accepted(await submit(LINE, { n: 'l-2' }, { query: '?fal_max_queue_length=2' }));

    for (let i = 1; i <= 3; i++) {
      if (i > 1) await fx.backend.nth(before + i);
      fx.backend.release();
    }
    await waitCompleted(fx.stack, LINE, second);
    await waitCompleted(fx.stack, LINE, first);
    await waitCompleted(fx.stack, LINE, running);
    expect(started().slice(before)).toEqual(['l-running', 'l-1', 'l-2']);
  });

  /**
   * Holds the model's one runner, queues `burst` requests of Alice and then 10 of Bob, lets the runner go, and
   * answers the runs (counted after the held one) at which Bob's started.
   */
  async function bobsStarts(model: string, burst: number): Promise<number[]> {
    // Runs of this model only (the other model's backlog may still be draining through the same backend).
    const order = () =>
      fair.order.flatMap((entry) => (entry.startsWith(`${model} `) ? [entry.slice(model.length + 1)] : []));
    fair.hold();
    await accepted(await submit(model, { model, tag: 'hold' }));
    await eventually(async () => (order().includes('hold') ? true : undefined));
    const alice = Array.from({ length: burst }, (_, i) => i);
    for (let i = 0; i < alice.length; i += 16) {
      await Promise.all(
        alice.slice(i, i + 16).map(async (n) => accepted(await submit(model, { model, tag: `A${n}` }))),
      );
    }
    await backlogReaches(model, burst);
    const bobs: string[] = [];
    for (let n = 0; n < 10; n++)
      bobs.push(await accepted(await submit(model, { model, tag: `B${n}` }, { owner: 'bob' })));
    // Each of Bob's runs is scheduled (its own history says so) and has reached the task queue (history hands it to
    // matching a moment later) before the runner is let go.
    for (const id of bobs) await scheduled(id);
    await backlogReaches(model, burst + bobs.length);
    fair.releaseFirst();
    await eventually(async () => (order().filter((t) => t.startsWith('B')).length === 10 ? true : undefined), 120_000);
    const next = order().slice(order().indexOf('hold') + 1);
    return next.flatMap((t, i) => (t.startsWith('B') ? [i + 1] : []));
  }

  it('starts 10 requests of one owner within the next 20 runs, submitted behind 1,000 of another', async () => {
    const runs = await bobsStarts(FAIR, 1000);
    console.log(`fairness, equal weights: Bob's 10 requests started at runs ${runs.join(', ')} after Alice's 1,000`);
    expect(runs).toHaveLength(10);
    expect(Math.max(...runs)).toBeLessThanOrEqual(20);
  }, 300_000);

  it("gives an owner of weight 3 three starts for each of another's", async () => {
    const runs = await bobsStarts(WEIGHTED, 200);
    console.log(`fairness, Bob weight 3: Bob's 10 requests started at runs ${runs.join(', ')} after Alice's 200`);
    // 10 of Bob's and about 10 / 3 of Alice's: all of Bob's within the first 14 runs (20 with equal weights).
    expect(Math.max(...runs)).toBeLessThanOrEqual(14);
  }, 300_000);
});

/** Runs in a task queue that no worker has taken (Temporal's own count, refreshed every few seconds). */
async function backlog(client: Client, namespace: string, taskQueue: string): Promise<number> {
  const res = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: proto.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportStats: true,
  });
  return Number(res.stats?.approximateBacklogCount ?? 0);
}
