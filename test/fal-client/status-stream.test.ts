import { useStack } from '../helpers/fixtures';
import { eventually, submitJson, TEST_KEY, type Stack } from '../helpers/stack';

const APP = 'acme/held';

/** An SSE response read as it arrives: raw text, parsed `data:` events, comments, and whether it ended. */
interface SseCapture {
  status: number;
  contentType: string | null;
  events: Record<string, unknown>[];
  comments: string[];
  ended: Promise<void>;
  abort(): void;
}

async function openStream(stack: Stack, path: string): Promise<SseCapture> {
  const controller = new AbortController();
  const res = await fetch(`${stack.url}${path}`, {
    headers: { authorization: `Key ${TEST_KEY}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  const capture: SseCapture = {
    status: res.status,
    contentType: res.headers.get('content-type'),
    events: [],
    comments: [],
    ended: Promise.resolve(),
    abort: () => controller.abort(),
  };
  capture.ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of block.split('\n')) {
            if (line.startsWith('data: ')) capture.events.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
            else if (line.startsWith(':')) capture.comments.push(line);
          }
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  })();
  return capture;
}

describe('the SSE status stream (GET .../status/stream)', () => {
  const fx = useStack({
    models: ({ backend }) => ({ models: [{ id: APP, backend: { kind: 'http', url: backend.url }, concurrency: 1 }] }),
    env: { STATUS_STREAM_KEEPALIVE_MS: '300', STATUS_STREAM_POLL_MS: '200' },
  });

  it('sends one event per change with new log lines only, pings while idle, and ends after COMPLETED', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { n: 1 });
    const stream = await openStream(fx.stack, `/${APP}/requests/${request_id}/status/stream?logs=1`);
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);

    await fx.backend.nth(1);
    const hasRunnerLog = (e: Record<string, unknown>) =>
      e.status === 'IN_PROGRESS' && (e.logs as { message: string }[]).some((l) => l.message.startsWith('POST'));
    await eventually(async () => (stream.events.some(hasRunnerLog) ? 1 : undefined));
    // Nothing changes while the backend holds the request: only keep-alive comments flow.
    // Two keep-alives are the event waited for: by then the stream has polled the held request several times
    // (every 200 ms, pings every 300 ms), however long that took on this machine, and found nothing new.
    const eventsWhileIdle = stream.events.length;
    const pings = () => stream.comments.filter((c) => c === ': ping').length;
    const pingsBefore = pings();
    await eventually(async () => (pings() >= pingsBefore + 2 ? true : undefined));
    expect(stream.events.length).toBe(eventsWhileIdle);

    fx.backend.release({ ok: 1 });
    await stream.ended;
    const last = stream.events.at(-1)!;
    expect(last).toMatchObject({ status: 'COMPLETED', request_id, metrics: { inference_time: expect.any(Number) } });
    expect(stream.events.filter((e) => e.status === 'COMPLETED')).toHaveLength(1);
    const serialised = stream.events.map((e) => JSON.stringify(e));
    serialised.slice(1).forEach((s, i) => expect(s).not.toBe(serialised[i]));
    // Across all events each log line appears once, in order.
    const lines = stream.events.flatMap((e) => (e.logs as { message: string }[]).map((l) => l.message));
    expect(lines[0]).toMatch(/^POST /);
    expect(lines.at(-1)).toMatch(/backend answered 200/);
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('leaves log lines out with logs=0', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { n: 2 });
    const stream = await openStream(fx.stack, `/${APP}/requests/${request_id}/status/stream?logs=0`);
    await fx.backend.nth(2);
    await eventually(async () => (stream.events.some((e) => e.status === 'IN_PROGRESS') ? 1 : undefined));
    fx.backend.release({ ok: 2 });
    await stream.ended;
    expect(stream.events.every((e) => Array.isArray(e.logs) && e.logs.length === 0)).toBe(true);
    expect(stream.events.at(-1)?.status).toBe('COMPLETED');
  });

  it('streams a finished request as one COMPLETED event and ends at once', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { n: 3 });
    await fx.backend.nth(3);
    fx.backend.release({ ok: 3 });
    await eventually(async () => {
      const res = await fx.stack.api(`/${APP}/requests/${request_id}/status`);
      return res.status === 200 ? 1 : undefined;
    });
    const stream = await openStream(fx.stack, `/${APP}/requests/${request_id}/status/stream`);
    await stream.ended;
    expect(stream.events).toEqual([expect.objectContaining({ status: 'COMPLETED', request_id })]);
  });

  it('answers an unknown request with a JSON 404, not a stream', async () => {
    const res = await fx.stack.api(`/${APP}/requests/00000000-0000-4000-8000-000000000000/status/stream`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ detail: 'Request not found' });
  });

  it('polls a watched request once however many streams follow it, and not at all once they hang up', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { n: 4 });
    const watchers = fx.stack.server.statusWatchers;
    const streams = await Promise.all(
      [1, 2, 3].map(() => openStream(fx.stack, `/${APP}/requests/${request_id}/status/stream`)),
    );
    await eventually(async () => (streams.every((s) => s.events.length > 0) ? 1 : undefined));
    expect(watchers.watchedCount).toBe(1);

    streams.forEach((s) => s.abort());
    await Promise.all(streams.map((s) => s.ended));
    await eventually(async () => (watchers.watchedCount === 0 ? 1 : undefined));

    await fx.backend.nth(4);
    fx.backend.release({ ok: 4 });
  });
});
