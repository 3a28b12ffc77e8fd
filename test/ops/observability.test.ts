import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually } from '../helpers/stack';
import { metricValue, startObservedStack, type ObservedStack } from './observed-stack';

const run = promisify(execFile);
const MODEL = 'acme/metered';

describe('observability: metrics, request-scoped logs, search attributes', () => {
  let backend: GatedBackend;
  let receiver: LoopbackServer;
  let stack: ObservedStack;

  beforeAll(async () => {
    backend = await startGatedBackend();
    receiver = await startLoopbackServer(respondJson(204, null));
    stack = await startObservedStack({
      models: [{ id: MODEL, backend: { kind: 'http', url: backend.url }, concurrency: 1, maxAttempts: 1 }],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await backend?.close();
    await receiver?.close();
  });

  const scrape = async (url = `${stack.server.url}/metrics`) => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    return res.text();
  };
  const submit = async (body: unknown, webhook = false) => {
    const query = webhook ? `?fal_webhook=${encodeURIComponent(`${receiver.url}/hook`)}` : '';
    const res = await stack.api(`/${MODEL}${query}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { request_id: string }).request_id;
  };
  const status = async (id: string) =>
    ((await (await stack.api(`/${MODEL}/requests/${id}/status`)).json()) as { status: string }).status;
  const listWorkflows = async (query: string): Promise<string[]> => {
    const { stdout } = await run(process.env.TEST_TEMPORAL_CLI!, [
      'workflow',
      'list',
      '--address',
      process.env.TEST_TEMPORAL_ADDRESS!,
      '--query',
      query,
      '--output',
      'json',
    ]);
    const rows = stdout.trim() ? (JSON.parse(stdout) as { execution: { workflowId: string } }[]) : [];
    return rows.map((r) => r.execution.workflowId);
  };
  const listed = (query: string, ids: string[]) =>
    eventually(
      async () => {
        const found = await listWorkflows(query);
        return ids.every((id) => found.includes(id)) ? found : undefined;
      },
      20_000,
      300,
    );

  it('moves every queue series while requests wait, run, finish and deliver their webhooks', async () => {
    const before = await scrape();
    const model = { model: MODEL };

    const first = await submit({ n: 1 }, true);
    await eventually(async () => ((await status(first)) === 'IN_PROGRESS' ? true : undefined));
    // Concurrency 1: these two wait for the model's only slot.
    const second = await submit({ n: 2 });
    const third = await submit({ n: 3 });

    // Exactly the two waiting ones; Temporal's statistics may lag a few seconds behind, hence the wait.
    const waiting = await eventually(
      async () => {
        const text = await scrape();
        return metricValue(text, 'fal_queue_depth', model) === 2 ? text : undefined;
      },
      20_000,
      250,
    );
    expect(metricValue(waiting, 'fal_queue_oldest_age_seconds', model)).toBeGreaterThan(0);
    expect(metricValue(waiting, 'fal_queue_requests_submitted_total', model)).toBe(
      metricValue(before, 'fal_queue_requests_submitted_total', model) + 3,
    );

    // Temporal's own view of the same queue: the search attributes our requests carry.
    const queued = await listed(`FalModelId='${MODEL}' AND FalState='IN_QUEUE'`, [second, third]);
    expect(queued).not.toContain(first);
    await listed(`FalModelId='${MODEL}' AND FalOwner='alice' AND FalState='DISPATCHED'`, [first]);

    for (let i = 0; i < 3; i++) {
      await eventually(async () => (backend.requests.length > i ? true : undefined));
      backend.release({ i });
    }
    await eventually(async () => ((await status(third)) === 'COMPLETED' ? true : undefined));
    await receiver.nth(1);

    const after = await eventually(
      async () => {
        const text = await scrape();
        const grew = (name: string, labels: Record<string, string>, by: number) =>
          metricValue(text, name, labels) - metricValue(before, name, labels) >= by;
        return grew('fal_queue_webhook_delivery_latency_seconds_count', { result: 'delivered' }, 1) &&
          grew('fal_queue_requests_completed_total', { ...model, outcome: 'ok' }, 3)
          ? text
          : undefined;
      },
      10_000,
      200,
    );
    const delta = (name: string, labels: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('fal_queue_requests_completed_total', { ...model, outcome: 'ok' })).toBe(3);
    expect(delta('fal_queue_inference_duration_seconds_count', { ...model, result: 'ok' })).toBe(3);
    expect(delta('fal_queue_inference_duration_seconds_sum', { ...model, result: 'ok' })).toBeGreaterThan(0);
    expect(delta('fal_queue_webhook_attempts_total', { result: 'delivered' })).toBe(1);
    expect(delta('fal_queue_webhook_attempt_duration_seconds_count', { result: 'delivered' })).toBe(1);
    expect(delta('fal_queue_webhook_delivery_latency_seconds_count', { result: 'delivered' })).toBe(1);
    await eventually(async () => (metricValue(await scrape(), 'fal_queue_depth', model) === 0 ? true : undefined));

    await listed(`FalModelId='${MODEL}' AND FalState='COMPLETED'`, [first, second, third]);
    // With a webhook, COMPLETED is written in the workflow task that closes the request, after the webhook's attempt:
    // Temporal then skips that upsert's own visibility write, and the close record carries it.
    const client = new Client({ connection: stack.workers.connection, namespace: stack.config.temporal.namespace });
    const events = (await client.workflow.getHandle(first).fetchHistory()).events ?? [];
    const named = events.map((e) => {
      const type = String(temporal.api.enums.v1.EventType[e.eventType ?? 0]).replace('EVENT_TYPE_', '');
      const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
      return fields ? `${type} ${Buffer.from(fields.FalState?.data ?? []).toString()}` : type;
    });
    expect(named.filter((n) => n.startsWith('UPSERT'))).toEqual([
      'UPSERT_WORKFLOW_SEARCH_ATTRIBUTES "DISPATCHED"',
      'UPSERT_WORKFLOW_SEARCH_ATTRIBUTES "COMPLETED"',
    ]);
    // The webhook's first attempt is a local activity in the workflow task that records the result, and closes it.
    expect(named.slice(-7)).toEqual([
      'ACTIVITY_TASK_COMPLETED', // the run
      'WORKFLOW_TASK_SCHEDULED',
      'WORKFLOW_TASK_STARTED',
      'WORKFLOW_TASK_COMPLETED',
      'MARKER_RECORDED', // the webhook's attempt
      'UPSERT_WORKFLOW_SEARCH_ATTRIBUTES "COMPLETED"',
      'WORKFLOW_EXECUTION_COMPLETED',
    ]);

    // The worker process has its own endpoint (METRICS_PORT) with the series it moves.
    expect(stack.workers.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const workerText = await scrape(`${stack.workers.metricsUrl}/metrics`);
    expect(metricValue(workerText, 'fal_queue_requests_completed_total', { ...model, outcome: 'ok' })).toBeGreaterThan(
      0,
    );
    expect((await fetch(`${stack.workers.metricsUrl}/healthz`)).status).toBe(200);

    // Every log line about the first request names it: the API's access log, the runner's, the webhook's.
    const about = (msg: string) => stack.logs.find((l) => l.request_id === first && l.msg === msg);
    expect(about('request ended')).toMatchObject({ model_id: MODEL, outcome: 'ok' });
    expect(about('inference attempt ended')).toMatchObject({ model_id: MODEL, result: 'ok', attempt: 1 });
    expect(about('webhook attempt')).toMatchObject({ result: 'delivered', status_code: 204 });
    const access = stack.logs.find((l) => l.request_id === first && (l.req as { method?: string })?.method === 'POST');
    expect(access).toMatchObject({ req: { method: 'POST', path: `/${MODEL}` }, res: { statusCode: 200 } });
    // Neither the key nor the webhook URL reaches the logs.
    const all = JSON.stringify(stack.logs.lines);
    expect(all).not.toContain('test-secret');
    expect(all).not.toContain(encodeURIComponent(receiver.url));
  });

  it('counts a cancelled request by its outcome and marks it in its search attributes', async () => {
    const before = await scrape();
    const blocker = await submit({ n: 'blocker' });
    await eventually(async () => ((await status(blocker)) === 'IN_PROGRESS' ? true : undefined));
    const doomed = await submit({ n: 'doomed' });
    expect((await stack.api(`/${MODEL}/requests/${doomed}/cancel`, { method: 'PUT' })).status).toBe(202);
    await eventually(async () => ((await status(doomed)) === 'COMPLETED' ? true : undefined));

    await listed(`FalModelId='${MODEL}' AND FalState='COMPLETED' AND FalErrorType='cancelled'`, [doomed]);
    const after = await eventually(
      async () => {
        const text = await scrape();
        const name = 'fal_queue_requests_completed_total';
        const labels = { model: MODEL, outcome: 'cancelled' };
        return metricValue(text, name, labels) > metricValue(before, name, labels) ? text : undefined;
      },
      10_000,
      200,
    );
    expect(
      metricValue(after, 'fal_queue_requests_completed_total', { model: MODEL, outcome: 'cancelled' }) -
        metricValue(before, 'fal_queue_requests_completed_total', { model: MODEL, outcome: 'cancelled' }),
    ).toBe(1);

    await eventually(async () => (backend.requests.length > 3 ? true : undefined));
    backend.release();
    await eventually(async () => ((await status(blocker)) === 'COMPLETED' ? true : undefined));
  });

  it("echoes the caller's x-request-id and logs it with the request", async () => {
    const res = await stack.api(`/${MODEL}/requests/not-a-request/status`, { headers: { 'x-request-id': 'trace-42' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-request-id')).toBe('trace-42');
    const line = await eventually(async () => stack.logs.find((l) => (l.req as { id?: string })?.id === 'trace-42'));
    expect(line).toMatchObject({ request_id: 'not-a-request', res: { statusCode: 404 } });
  });
});
