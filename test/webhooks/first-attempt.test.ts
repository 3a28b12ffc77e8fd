import { setTimeout as sleep } from 'node:timers/promises';
import { temporal } from '@temporalio/proto';
import { useStack } from '../helpers/fixtures';
import { closed, scheduledActivities } from '../helpers/history';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { submitJson } from '../helpers/stack';
import { metricValue } from '../ops/observed-stack';

const APP = 'acme/echo';
const INVALID = 'acme/invalid';
const VALIDATION_DETAIL = [{ loc: ['body', 'prompt'], msg: 'too short', type: 'value_error' }];
const EventType = temporal.api.enums.v1.EventType;
/** Longer than LocalAttemptGate's default `slowAfterMs` (1 s), shorter than the stack's WEBHOOK_TIMEOUT_MS (2 s). */
const SLOW_ANSWER_MS = 1_200;

/**
 * The webhook's first attempt as a local activity (InferenceRequestInput.firstWebhookAttemptLocal), against real
 * receivers: the request's outcome stays readable while the attempt holds the workflow task, and a receiver that was
 * slow gets its next first attempt as an activity, which leaves the workflow task free.
 */
describe('the first webhook attempt', () => {
  // A backend that rejects every input, as a model server does with pydantic's entries (fal's 422).
  let rejecting: LoopbackServer;
  beforeAll(async () => {
    rejecting = await startLoopbackServer((_rec, _raw, res) => {
      res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: VALIDATION_DETAIL }));
    });
  });
  afterAll(async () => rejecting?.close());
  const fx = useStack({
    models: ({ backend }) => ({
      models: [
        { id: APP, backend: { kind: 'http', url: backend.url } },
        { id: INVALID, backend: { kind: 'http', url: rejecting.url } },
      ],
    }),
    // The worker's own metrics endpoint, on a free port.
    env: { METRICS_PORT: '0' },
  });
  const deferredCount = async () =>
    metricValue(
      await (await fetch(`${fx.stack.workers!.metricsUrl}/metrics`)).text(),
      'fal_queue_webhook_attempts_deferred_total',
    );
  const receivers: LoopbackServer[] = [];
  afterAll(async () => Promise.all(receivers.map((r) => r.close())));

  async function receiver(handler: Parameters<typeof startLoopbackServer>[0]): Promise<LoopbackServer> {
    const r = await startLoopbackServer(handler);
    receivers.push(r);
    return r;
  }

  /** Submits with the receiver as webhook, lets the run answer `output`, and returns the request id. */
  async function run(hook: LoopbackServer, output: unknown): Promise<string> {
    const runsBefore = fx.backend.requests.length;
    const { request_id } = await submitJson(fx.stack, `/${APP}?fal_webhook=${encodeURIComponent(`${hook.url}/hook`)}`, {
      prompt: 'hi',
    });
    await fx.backend.nth(runsBefore + 1);
    fx.backend.release(output);
    return request_id;
  }

  const eventTypes = async (requestId: string) =>
    ((await fx.temporal.workflow.getHandle(requestId).fetchHistory()).events ?? []).map((e) => e.eventType);

  it('is local, and the outcome is readable while the receiver holds it', async () => {
    // The receiver reads the request back before it answers, as many do: the workflow task is open all that time.
    const seen: { status?: unknown; result?: unknown } = {};
    const hook = await receiver(async (rec, _raw, res) => {
      const id = (rec.json as { request_id: string }).request_id;
      seen.status = await (await fx.stack.api(`/${APP}/requests/${id}/status`)).json();
      seen.result = await (await fx.stack.api(`/${APP}/requests/${id}`)).json();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    const requestId = await run(hook, { answer: 42 });
    await closed(fx.temporal, requestId);

    expect(seen.status).toMatchObject({ status: 'COMPLETED', request_id: requestId });
    expect(seen.result).toEqual({ answer: 42 });
    expect(hook.requests).toHaveLength(1);
    const events = await eventTypes(requestId);
    expect(events).toContain(EventType.EVENT_TYPE_MARKER_RECORDED);
    expect(await scheduledActivities(fx.temporal, requestId)).toEqual(['runInference']);
  });

  it('leaves a failed run readable too: its error, from the history, while the receiver holds the attempt', async () => {
    const seen: { status?: unknown; result?: { code: number; body: unknown } } = {};
    const hook = await receiver(async (rec, _raw, res) => {
      const id = (rec.json as { request_id: string }).request_id;
      seen.status = await (await fx.stack.api(`/${INVALID}/requests/${id}/status`)).json();
      const result = await fx.stack.api(`/${INVALID}/requests/${id}`);
      seen.result = { code: result.status, body: await result.json() };
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    const { request_id: requestId } = await submitJson(
      fx.stack,
      `/${INVALID}?fal_webhook=${encodeURIComponent(`${hook.url}/hook`)}`,
      { prompt: 'hi' },
    );
    await closed(fx.temporal, requestId);

    expect(seen.status).toMatchObject({ status: 'COMPLETED', request_id: requestId, error_type: 'validation_error' });
    expect(seen.result).toEqual({ code: 422, body: { detail: VALIDATION_DETAIL, error_type: 'validation_error' } });
    expect(await eventTypes(requestId)).toContain(EventType.EVENT_TYPE_MARKER_RECORDED);
  });

  it('is an activity for a receiver that was slow last time, and the receiver gets it once', async () => {
    const hook = await receiver(async (_rec, _raw, res) => {
      await sleep(SLOW_ANSWER_MS);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    const first = await run(hook, { n: 1 });
    await closed(fx.temporal, first);
    expect(await scheduledActivities(fx.temporal, first)).toEqual(['runInference']);

    const deferredBefore = await deferredCount();
    const second = await run(hook, { n: 2 });
    await closed(fx.temporal, second);
    expect((await deferredCount()) - deferredBefore).toBe(1);
    // The worker deferred the local attempt without sending anything, and the workflow made it as an activity.
    expect(await scheduledActivities(fx.temporal, second)).toEqual(['runInference', 'deliverWebhook']);
    expect(hook.requests.map((r) => (r.json as { request_id: string }).request_id)).toEqual([first, second]);
  });
});
