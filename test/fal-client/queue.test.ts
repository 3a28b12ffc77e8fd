import { ApiError, fal, type QueueStatus } from '@fal-ai/client';
import { useStack } from '../helpers/fixtures';
import { respondJson } from '../helpers/http-peers';
import { TEST_KEY, eventually } from '../helpers/stack';
import { pointFalAt } from './fal-hosts';

const SLOW = 'acme/slow';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type LogLine = { message: string; level: string; source: string; timestamp: string };
const logsOf = (status: QueueStatus): LogLine[] => ('logs' in status ? ((status.logs ?? []) as LogLine[]) : []);

describe('@fal-ai/client queue calls against our stack', () => {
  const fx = useStack({
    models: ({ backend }) => ({ models: [{ id: SLOW, backend: { kind: 'http', url: backend.url }, concurrency: 1 }] }),
    receiver: respondJson(200, { ok: true }),
  });
  beforeAll(() => {
    // Exactly as a user would: the singleton, configured once, hosts rewritten by the middleware.
    fal.config({ credentials: TEST_KEY, requestMiddleware: pointFalAt(fx.stack.url) });
  });

  /** Waits until the backend holds the request with this input. */
  const heldBy = (n: string) =>
    eventually(async () => (fx.backend.requests.some((r) => (r.json as { n?: string }).n === n) ? true : undefined));
  const ourStatus = async (requestId: string) => {
    const res = await fx.stack.api(`/${SLOW}/requests/${requestId}/status`);
    return (await res.json()) as Record<string, unknown>;
  };

  it('submit (webhook, priority, start timeout, custom headers), status with and without logs, result, webhook', async () => {
    const options = {
      input: { n: 'submit' },
      webhookUrl: `${fx.receiver.url}/hook`,
      priority: 'low' as const,
      startTimeout: 30,
      headers: { 'Idempotency-Key': `submit-${Date.now()}` },
    };
    const submitted = await fal.queue.submit(SLOW, options);
    const requestId = submitted.request_id;
    expect(requestId).toMatch(UUID);
    expect(submitted).toMatchObject({
      status: 'IN_QUEUE',
      response_url: `${fx.stack.url}/${SLOW}/requests/${requestId}`,
      status_url: `${fx.stack.url}/${SLOW}/requests/${requestId}/status`,
      cancel_url: `${fx.stack.url}/${SLOW}/requests/${requestId}/cancel`,
      queue_position: expect.any(Number),
    });
    // The custom header reached us: the same Idempotency-Key names the same request.
    expect((await fal.queue.submit(SLOW, options)).request_id).toBe(requestId);

    await heldBy('submit');
    const withLogs = await eventually(async () => {
      const s = await fal.queue.status(SLOW, { requestId, logs: true });
      return s.status === 'IN_PROGRESS' && logsOf(s).length > 0 ? s : undefined;
    });
    expect(logsOf(withLogs)[0]).toEqual({
      message: expect.stringContaining('POST'),
      level: 'INFO',
      source: 'USER',
      timestamp: expect.any(String),
    });
    const withoutLogs = await fal.queue.status(SLOW, { requestId, logs: false });
    expect(withoutLogs.status).toBe('IN_PROGRESS');
    expect(logsOf(withoutLogs)).toEqual([]);

    fx.backend.release({ images: ['done'] });
    const completed = await fal.queue.subscribeToStatus(SLOW, { requestId, pollInterval: 100 });
    expect(completed).toMatchObject({ status: 'COMPLETED', request_id: requestId });
    expect(await fal.queue.result(SLOW, { requestId })).toEqual({ data: { images: ['done'] }, requestId });

    const hook = await eventually(async () =>
      fx.receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === requestId),
    );
    expect(hook.json).toEqual({
      request_id: requestId,
      gateway_request_id: requestId,
      status: 'OK',
      payload: { images: ['done'] },
      error: null,
    });
    expect(fx.backend.requests.filter((r) => (r.json as { n?: string }).n === 'submit')).toHaveLength(1);
  });

  it('subscribe in polling mode reports IN_PROGRESS with logs through onQueueUpdate, then returns the result', async () => {
    const updates: QueueStatus[] = [];
    const enqueued: string[] = [];
    const subscription = fal.subscribe(SLOW, {
      input: { n: 'polling' },
      logs: true,
      pollInterval: 100,
      onEnqueue: (id) => enqueued.push(id),
      onQueueUpdate: (update) => updates.push(update),
    });
    await heldBy('polling');
    await eventually(async () =>
      updates.some((u) => u.status === 'IN_PROGRESS' && logsOf(u).length > 0) ? 1 : undefined,
    );
    fx.backend.release({ answer: 'polled' });

    const result = await subscription;
    expect(result).toEqual({ data: { answer: 'polled' }, requestId: enqueued[0] });
    expect(updates.at(-1)).toMatchObject({
      status: 'COMPLETED',
      request_id: enqueued[0],
      metrics: { inference_time: expect.any(Number) },
    });
  });

  it('subscribe in streaming mode gets one update per change, log lines once each, and the result', async () => {
    const updates: QueueStatus[] = [];
    const enqueued: string[] = [];
    const subscription = fal.subscribe(SLOW, {
      input: { n: 'streaming' },
      mode: 'streaming',
      logs: true,
      onEnqueue: (id) => enqueued.push(id),
      onQueueUpdate: (update) => updates.push(structuredClone(update)),
    });
    await heldBy('streaming');
    await eventually(async () => (updates.some((u) => u.status === 'IN_PROGRESS') ? 1 : undefined));
    fx.backend.release({ answer: 'streamed' });

    expect(await subscription).toEqual({ data: { answer: 'streamed' }, requestId: enqueued[0] });
    const last = updates.at(-1)!;
    expect(last).toMatchObject({ status: 'COMPLETED', request_id: enqueued[0] });
    // The client accumulates the log lines of every event: each must have arrived exactly once.
    const lines = logsOf(last).map((l) => JSON.stringify(l));
    expect(new Set(lines).size).toBe(lines.length);
    expect(logsOf(last).map((l) => l.message)).toEqual(
      expect.arrayContaining([expect.stringContaining('POST'), expect.stringMatching(/backend answered 200/)]),
    );
    // Every event is a change.
    const serialised = updates.map((u) => JSON.stringify(u));
    serialised.slice(1).forEach((s, i) => expect(s).not.toBe(serialised[i]));
  });

  it('streamStatus emits the states as they happen and resolves done() with COMPLETED', async () => {
    const { request_id: requestId } = await fal.queue.submit(SLOW, { input: { n: 'stream-status' } });
    const stream = await fal.queue.streamStatus(SLOW, { requestId, logs: false });
    const seen: QueueStatus[] = [];
    stream.on('data', (event) => seen.push(event));
    await heldBy('stream-status');
    await eventually(async () => (seen.some((e) => e.status === 'IN_PROGRESS') ? 1 : undefined));
    fx.backend.release({ answer: 'streamStatus' });

    const final = await stream.done();
    expect(final).toMatchObject({ status: 'COMPLETED', request_id: requestId, logs: [] });
    expect(seen.map((e) => e.status).filter((s, i, all) => s !== all[i - 1])).toEqual(
      expect.arrayContaining(['IN_PROGRESS', 'COMPLETED']),
    );
    expect(seen.filter((e) => e.status === 'COMPLETED')).toHaveLength(1);
  });

  it('cancel stops a running request; its result then throws ApiError 400 with error_type cancelled', async () => {
    const { request_id: requestId } = await fal.queue.submit(SLOW, { input: { n: 'cancel' } });
    await heldBy('cancel');
    await fal.queue.cancel(SLOW, { requestId });
    await eventually(async () =>
      fx.backend.aborted.some((b) => (b as { n?: string }).n === 'cancel') ? 1 : undefined,
    );
    await fal.queue.subscribeToStatus(SLOW, { requestId, pollInterval: 100 });

    const error = await fal.queue.result(SLOW, { requestId }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 400,
      requestId,
      body: { detail: 'Request was cancelled', error_type: 'cancelled' },
    });
  });

  it('a subscribe that times out on the client cancels the request on our side', async () => {
    const enqueued: string[] = [];
    const subscription = fal.subscribe(SLOW, {
      input: { n: 'client-timeout' },
      timeout: 1500,
      pollInterval: 100,
      onEnqueue: (id) => enqueued.push(id),
    });
    await expect(subscription).rejects.toThrow(/timed out/);
    // The runner really stopped, and the request ended cancelled.
    await eventually(async () =>
      fx.backend.aborted.some((b) => (b as { n?: string }).n === 'client-timeout') ? 1 : undefined,
    );
    const status = await eventually(async () => {
      const s = await ourStatus(enqueued[0]!);
      return s.status === 'COMPLETED' ? s : undefined;
    });
    expect(status.error_type).toBe('cancelled');
  });
});
