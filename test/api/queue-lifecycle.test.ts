import { useStack } from '../helpers/fixtures';
import { respondJson } from '../helpers/http-peers';
import { closed, startedAttempts } from '../helpers/history';
import { eventually, submitJson, waitCompleted } from '../helpers/stack';

const APP = 'acme/slow';

describe('a request through the queue: status, result, cancel', () => {
  const fx = useStack({
    models: ({ backend }) => ({ models: [{ id: APP, backend: { kind: 'http', url: backend.url }, concurrency: 1 }] }),
    receiver: respondJson(204, null),
  });

  const status = async (id: string, logs = false) => {
    const res = await fx.stack.api(`/${APP}/requests/${id}/status${logs ? '?logs=1' : ''}`);
    return { code: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const statusIs = (id: string, wanted: string) =>
    eventually(async () => {
      const s = await status(id, true);
      return s.body.status === wanted ? s : undefined;
    });
  const withWebhook = (path: string) => `${path}?fal_webhook=${encodeURIComponent(`${fx.receiver.url}/hook`)}`;

  it('answers IN_QUEUE, IN_PROGRESS and COMPLETED with 202, 202 and 200, then returns the output', async () => {
    const first = await submitJson(fx.stack, `/${APP}`, { n: 1 });
    expect(first).toMatchObject({
      status: 'IN_QUEUE',
      response_url: `${fx.stack.url}/${APP}/requests/${first.request_id}`,
      status_url: `${fx.stack.url}/${APP}/requests/${first.request_id}/status`,
      cancel_url: `${fx.stack.url}/${APP}/requests/${first.request_id}/cancel`,
    });
    await statusIs(first.request_id, 'IN_PROGRESS');
    // The runner's log lines are visible while it runs (heartbeats carry them), in fal's shape. The gated backend
    // holds the run until released, so there is no hurry: the wait is for the event, not against a clock.
    const running = await eventually(async () => {
      const s = await status(first.request_id, true);
      return (s.body.logs as unknown[]).length > 0 ? s : undefined;
    });
    expect(running.code).toBe(202);
    expect(running.body.status).toBe('IN_PROGRESS');
    expect(running.body.logs).toEqual(
      expect.arrayContaining([
        { message: expect.stringContaining('POST'), level: 'INFO', source: 'USER', timestamp: expect.any(String) },
      ]),
    );

    // Concurrency 1: the second request waits its turn.
    const second = await submitJson(fx.stack, `/${APP}`, { n: 2 });
    const queued = await status(second.request_id);
    expect(queued.code).toBe(202);
    expect(queued.body).toMatchObject({ status: 'IN_QUEUE', request_id: second.request_id, queue_position: 0 });

    const early = await fx.stack.api(`/${APP}/requests/${first.request_id}`);
    expect(early.status).toBe(400);
    expect(await early.json()).toEqual({ detail: 'Request is still in progress' });

    fx.backend.release({ answer: 1 });
    const done = await statusIs(first.request_id, 'COMPLETED');
    expect(done.code).toBe(200);
    expect(done.body.metrics).toEqual({ inference_time: expect.any(Number) });
    const result = await fx.stack.api(`/${APP}/requests/${first.request_id}`);
    expect(result.status).toBe(200);
    expect(result.headers.get('x-fal-request-id')).toBe(first.request_id);
    expect(await result.json()).toEqual({ answer: 1 });

    await statusIs(second.request_id, 'IN_PROGRESS');
    fx.backend.release({ answer: 2 });
    await waitCompleted(fx.stack, APP, second.request_id);
  });

  it('never runs a queued request that was cancelled, and sends its webhook as ERROR', async () => {
    const blocker = await submitJson(fx.stack, `/${APP}`, { n: 'blocker' });
    await statusIs(blocker.request_id, 'IN_PROGRESS');
    const queued = await submitJson(fx.stack, withWebhook(`/${APP}`), { n: 'cancel-me' });
    const hooksBefore = fx.receiver.requests.length;

    const cancel = await fx.stack.api(`/${APP}/requests/${queued.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    expect(await cancel.json()).toEqual({ status: 'CANCELLATION_REQUESTED' });

    const done = await statusIs(queued.request_id, 'COMPLETED');
    expect(done.body).toMatchObject({ error_type: 'cancelled' });
    const hook = await fx.receiver.nth(hooksBefore + 1);
    expect(hook.json).toMatchObject({ request_id: queued.request_id, status: 'ERROR' });

    // Its workflow has closed, so its history is final: its run waited in the task queue and no runner ever took it.
    await closed(fx.temporal, queued.request_id);
    expect(await startedAttempts(fx.temporal, queued.request_id, 'runInference')).toEqual([]);
    fx.backend.release();
    await waitCompleted(fx.stack, APP, blocker.request_id);
    // The backend (one run at a time) got the blocker, and then nothing: the cancelled request never reached it.
    expect(fx.backend.requests.map((r) => r.json)).not.toContainEqual({ n: 'cancel-me' });

    const again = await fx.stack.api(`/${APP}/requests/${queued.request_id}/cancel`, { method: 'PUT' });
    expect(again.status).toBe(400);
    expect(await again.json()).toEqual({ status: 'ALREADY_COMPLETED' });
  });

  it('stops a running request: the backend sees its call aborted', async () => {
    const running = await submitJson(fx.stack, `/${APP}`, { n: 'abort-me' });
    await statusIs(running.request_id, 'IN_PROGRESS');
    const cancel = await fx.stack.api(`/${APP}/requests/${running.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    await eventually(async () =>
      fx.backend.aborted.some((b) => (b as { n?: string }).n === 'abort-me') ? true : undefined,
    );
    const done = await statusIs(running.request_id, 'COMPLETED');
    expect(done.body.error_type).toBe('cancelled');
    const result = await fx.stack.api(`/${APP}/requests/${running.request_id}`);
    expect(result.status).toBe(400);
    expect(await result.json()).toMatchObject({ error_type: 'cancelled' });
  });

  it('answers 404 NOT_FOUND when cancelling a request that does not exist', async () => {
    const res = await fx.stack.api(`/${APP}/requests/00000000-0000-4000-8000-000000000000/cancel`, { method: 'PUT' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ status: 'NOT_FOUND' });
  });
});
