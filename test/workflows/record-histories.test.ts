import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';
import { Receiver, failThenSucceed, type Answer } from '../webhooks/receiver';

/**
 * Records the histories that `replay.test.ts` replays: every workflow type in realistic runs against the real stack.
 * Run only on purpose (`RECORD_HISTORIES=<tag> npx jest test/workflows/record-histories.test.ts`), on the workflow code
 * whose in-flight runs must keep working; a later change of a workflow's commands then needs `patched()`.
 */
const RECORD = process.env.RECORD_HISTORIES !== undefined && process.env.RECORD_HISTORIES !== '0';
/** `RECORD_HISTORIES=<tag>` names the files `<scenario>.<tag>.json`, so histories of each code generation stay. */
const TAG = RECORD && process.env.RECORD_HISTORIES !== '1' ? `.${process.env.RECORD_HISTORIES}` : '';
const OUT_DIR = join(__dirname, '..', 'fixtures', 'histories');

const ECHO = 'acme/echo';
const BROKEN = 'acme/broken';
const GATED = 'acme/gated';

(RECORD ? describe : describe.skip)('recording workflow histories', () => {
  let backend: LoopbackServer;
  let gated: GatedBackend;
  let broken: LoopbackServer;
  let stack: Stack;
  let connection: Connection;
  let client: Client;
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    backend = await startLoopbackServer((req, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.json }));
    });
    gated = await startGatedBackend();
    broken = await startLoopbackServer((_req, _raw, res) => {
      res
        .writeHead(422, { 'content-type': 'application/json' })
        .end(
          JSON.stringify({ detail: [{ loc: ['body', 'prompt'], msg: 'field required', type: 'value_error.missing' }] }),
        );
    });
    stack = await startStack({
      models: {
        models: [
          { id: ECHO, backend: { kind: 'http', url: backend.url } },
          { id: BROKEN, backend: { kind: 'http', url: broken.url } },
          { id: GATED, backend: { kind: 'http', url: gated.url }, queue: 'admission-workflow', concurrency: 1 },
        ],
      },
      env: { WEBHOOK_SCHEDULE: '0s,300ms,300ms', TEMPORAL_SEARCH_ATTRIBUTES: 'true' },
    });
    connection = await Connection.connect({ address: stack.config.temporal.address! });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await stack?.stop();
    await connection?.close();
    await backend?.close();
    await gated?.close();
    await broken?.close();
    await Promise.all(receivers.map((r) => r.close()));
  });

  async function receiver(answer: (n: number) => Answer): Promise<Receiver> {
    const r = await Receiver.start(answer);
    receivers.push(r);
    return r;
  }

  /** Saves every run of the workflow (oldest first) as `<name>.json`, `<name>.run2.json`, ... */
  async function save(name: string, workflowId: string): Promise<void> {
    const runs: string[] = [];
    for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      runs.push(execution.runId);
    }
    // The visibility store lists newest first.
    runs.reverse();
    expect(runs.length).toBeGreaterThan(0);
    for (const [i, runId] of runs.entries()) {
      // The CLI writes the JSON form every Temporal SDK's replayer reads.
      const json = execFileSync(
        process.env.TEST_TEMPORAL_CLI!,
        ['workflow', 'show', '--address', stack.config.temporal.address!, '-w', workflowId, '-r', runId, '-o', 'json'],
        { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      );
      const file = join(OUT_DIR, i === 0 ? `${name}${TAG}.json` : `${name}${TAG}.run${i + 1}.json`);
      writeFileSync(file, json);
    }
  }

  const closed = (workflowId: string) =>
    eventually(async () => {
      const d = await client.workflow.getHandle(workflowId).describe();
      return d.status.name === 'RUNNING' ? undefined : d;
    });
  const listed = (workflowId: string, runs: number) =>
    eventually(async () => {
      let n = 0;
      for await (const e of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        if (e.status.name !== 'RUNNING') n++;
      }
      return n >= runs ? n : undefined;
    });

  it('an OK request whose webhook is delivered at the first attempt', async () => {
    const hook = await receiver(() => ({ status: 200 }));
    const { request_id } = await submitJson(stack, `/${ECHO}?fal_webhook=${encodeURIComponent(hook.url)}`, { a: 1 });
    await hook.waitFor(1);
    await closed(request_id);
    await listed(request_id, 1);
    await save('inference-request.ok-webhook-first-attempt', request_id);
  });

  it('a request whose webhook needs retries (child delivery), then a redelivery of the closed delivery', async () => {
    const hook = await receiver(failThenSucceed(2, { status: 500 }));
    const { request_id } = await submitJson(stack, `/${ECHO}?fal_webhook=${encodeURIComponent(hook.url)}`, { b: 2 });
    await hook.waitFor(3);
    await closed(request_id);
    await closed(`${request_id}/webhook`);
    const res = await stack.api(`/${ECHO}/requests/${request_id}/webhook/redeliver`, { method: 'POST' });
    expect(res.status).toBe(202);
    await hook.waitFor(4);
    await eventually(async () => {
      const log = (await (await stack.api(`/${ECHO}/requests/${request_id}/webhook`)).json()) as { state: string };
      return log.state === 'delivered' ? log : undefined;
    });
    await closed(`${request_id}/webhook`);
    await listed(`${request_id}/webhook`, 2);
    await listed(request_id, 1);
    await save('inference-request.webhook-retries', request_id);
    await save('webhook-delivery.retries-then-redelivery', `${request_id}/webhook`);
  });

  it('a webhook that is exhausted, then redelivered from the request (first attempt only, Gone)', async () => {
    const gone = await receiver(() => ({ status: 410 }));
    const { request_id } = await submitJson(stack, `/${ECHO}?fal_webhook=${encodeURIComponent(gone.url)}`, { c: 3 });
    await gone.waitFor(1);
    await closed(request_id);
    const res = await stack.api(`/${ECHO}/requests/${request_id}/webhook/redeliver`, { method: 'POST' });
    expect(res.status).toBe(202);
    await gone.waitFor(2);
    await closed(`${request_id}/webhook`);
    await listed(request_id, 1);
    await listed(`${request_id}/webhook`, 1);
    await save('inference-request.webhook-gone', request_id);
    await save('webhook-delivery.redelivery-after-first-attempt', `${request_id}/webhook`);

    const down = await receiver(() => ({ status: 503, headers: { 'retry-after': '0' } }));
    const exhausted = await submitJson(stack, `/${ECHO}?fal_webhook=${encodeURIComponent(down.url)}`, { d: 4 });
    await down.waitFor(3);
    await closed(exhausted.request_id);
    await closed(`${exhausted.request_id}/webhook`);
    await listed(`${exhausted.request_id}/webhook`, 1);
    await save('webhook-delivery.exhausted', `${exhausted.request_id}/webhook`);
  });

  it('an error outcome (the backend rejects the input) with a webhook', async () => {
    const hook = await receiver(() => ({ status: 204 }));
    const { request_id } = await submitJson(stack, `/${BROKEN}?fal_webhook=${encodeURIComponent(hook.url)}`, {});
    const done = await waitCompleted(stack, BROKEN, request_id);
    expect(done).toMatchObject({ error_type: 'validation_error' });
    await hook.waitFor(1);
    await closed(request_id);
    await listed(request_id, 1);
    await save('inference-request.validation-error', request_id);
  });

  it('a model limited to one run: admitted at submit, one queued then admitted, one cancelled while queued', async () => {
    const hook = await receiver(() => ({ status: 200 }));
    const withHook = `?fal_webhook=${encodeURIComponent(hook.url)}`;
    const first = await submitJson(stack, `/${GATED}${withHook}`, { n: 1 });
    await gated.nth(1);
    const second = await submitJson(stack, `/${GATED}${withHook}`, { n: 2 });
    const third = await submitJson(stack, `/${GATED}`, { n: 3 });
    expect(second.queue_position).toBe(0);
    expect(third.queue_position).toBe(1);
    const cancel = await stack.api(`/${GATED}/requests/${third.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    await closed(third.request_id);
    gated.release({ n: 1 });
    await gated.nth(2);
    gated.release({ n: 2 });
    await waitCompleted(stack, GATED, second.request_id);
    await hook.waitFor(2);
    for (const id of [first.request_id, second.request_id]) await closed(id);
    for (const id of [first.request_id, second.request_id, third.request_id]) await listed(id, 1);
    await save('inference-request.admitted-at-submit', first.request_id);
    await save('inference-request.queued-then-admitted', second.request_id);
    await save('inference-request.cancelled-while-queued', third.request_id);
    // The queue runs on; its history so far replays like any other.
    await save('admission-queue.running', `admission/${stack.config.temporal.taskQueue}/${GATED}`);
  });

  it('an admission queue that continues as new', async () => {
    const workflowId = `admission-can-${stack.config.temporal.taskQueue}`;
    const handle = await client.workflow.start('admissionQueue', {
      workflowId,
      taskQueue: stack.config.temporal.taskQueue,
      args: [{ modelId: 'acme/none', capacity: 1, continueAsNewAfterEvents: 30 }],
    });
    // Ids without a request workflow: the grants fail as "missing", which the queue handles like any holder.
    for (let i = 0; i < 8; i++) {
      await handle.executeUpdate('enqueue', {
        args: [{ capacity: 1, queueLimit: 100, entries: [{ requestId: `r${i}`, priority: i % 2 ? 'low' : 'normal' }] }],
      });
      await handle.signal('release', [`r${i - 1}`]);
    }
    await listed(workflowId, 1);
    await save('admission-queue.continued-as-new', workflowId);
    await client.workflow.getHandle(workflowId).terminate('recorded');
  });

  it('a file sweep', async () => {
    const workflowId = `file-sweep-${stack.config.temporal.taskQueue}`;
    await client.workflow.execute('fileSweep', { workflowId, taskQueue: stack.config.temporal.taskQueue, args: [] });
    await listed(workflowId, 1);
    await save('file-sweep', workflowId);
  });
});
