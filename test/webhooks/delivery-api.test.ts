import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { OTHER_KEY, eventually, startStack, submitJson, type Stack } from '../helpers/stack';
import { Receiver, failThenSucceed, type Answer } from './receiver';
import { verifyFal, verifyStandard } from './verify';

/** The webhook features as an owner meets them over HTTP: signatures, the delivery log, redelivery. */
const APP = 'acme/echo';

interface LogBody {
  request_id: string;
  webhook_id: string;
  url: string;
  state: string;
  next_attempt_at: string | null;
  attempts: {
    attempt: number;
    at: string;
    trigger: string;
    status_code: number | null;
    error: string | null;
    latency_ms: number;
    next_attempt_at: string | null;
  }[];
}

let backend: LoopbackServer;
let stack: Stack;
const receivers: Receiver[] = [];

beforeAll(async () => {
  backend = await startLoopbackServer((req, _raw, res) => {
    const input = req.json as { size?: number };
    const output = input.size ? { blob: 'x'.repeat(input.size) } : { echo: input };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(output));
  });
  stack = await startStack({
    models: { models: [{ id: APP, backend: { kind: 'http', url: backend.url } }] },
    env: { WEBHOOK_SCHEDULE: '0s,2s,2s', WEBHOOK_MAX_PAYLOAD_BYTES: '2048' },
  });
});
afterAll(async () => {
  await stack?.stop();
  await backend?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

async function receiver(answer: (n: number) => Answer): Promise<Receiver> {
  const r = await Receiver.start(answer);
  receivers.push(r);
  return r;
}

async function submitWithHook(url: string, input: unknown = { prompt: 'a cat' }): Promise<string> {
  const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${encodeURIComponent(url)}`, input);
  return request_id;
}

async function deliveryLog(requestId: string, key?: string): Promise<{ status: number; body: LogBody }> {
  const res = await stack.api(`/${APP}/requests/${requestId}/webhook`, { key });
  return { status: res.status, body: (await res.json()) as LogBody };
}

/** Polls the log until `done` holds. */
function logWhen(requestId: string, done: (log: LogBody) => boolean, timeoutMs = 20_000): Promise<LogBody> {
  return eventually(async () => {
    const { status, body } = await deliveryLog(requestId);
    return status === 200 && done(body) ? body : undefined;
  }, timeoutMs);
}

const redeliver = (requestId: string, key?: string) =>
  stack.api(`/${APP}/requests/${requestId}/webhook/redeliver`, { method: 'POST', key });

describe('signatures', () => {
  it('signs every delivery with both schemes, verifiable by standardwebhooks and by fal’s recipe against our JWKS', async () => {
    const r = await receiver(failThenSucceed(1, { status: 500 }));
    const requestId = await submitWithHook(r.url);
    await r.waitFor(2);

    const jwks = (await (await fetch(`${stack.url}/.well-known/jwks.json`)).json()) as { keys: object[] };
    const secretRes = await stack.api('/webhooks/secret');
    const { secret, owner } = (await secretRes.json()) as { secret: string; owner: string };
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(owner).toBe('alice');
    expect(jwks.keys.length).toBeGreaterThanOrEqual(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });

    for (const delivery of r.deliveries) {
      expect(verifyStandard(delivery, secret)).toEqual(JSON.parse(delivery.body));
      expect(verifyFal(delivery, jwks)).toBe(true);
      expect(delivery.headers['x-fal-webhook-request-id']).toBe(requestId);
      expect(delivery.headers['x-fal-webhook-user-id']).toBe('alice');
      expect(delivery.headers['webhook-id']).toBe(`msg_${requestId}`);
    }

    // A tampered body fails both.
    const tampered = { ...r.deliveries[1]!, body: r.deliveries[1]!.body.replace('a cat', 'a dog') };
    expect(tampered.body).not.toBe(r.deliveries[1]!.body);
    expect(() => verifyStandard(tampered, secret)).toThrow();
    expect(verifyFal(tampered, jwks)).toBe(false);
    // So does another owner's secret.
    const bobSecret = ((await (await stack.api('/webhooks/secret', { key: OTHER_KEY })).json()) as { secret: string })
      .secret;
    expect(bobSecret).not.toBe(secret);
    expect(() => verifyStandard(r.deliveries[1]!, bobSecret)).toThrow();
    // And a delivery replayed ten minutes later is stale for both.
    const later = Date.now() + 10 * 60_000;
    expect(verifyFal(r.deliveries[1]!, jwks, later / 1000)).toBe(false);
    const now = jest.spyOn(Date, 'now').mockReturnValue(later);
    try {
      expect(() => verifyStandard(r.deliveries[1]!, secret)).toThrow(/too old/i);
    } finally {
      now.mockRestore();
    }
  });

  it('publishes the JWKS without an API key', async () => {
    const res = await fetch(`${stack.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    const { keys } = (await res.json()) as { keys: Record<string, unknown>[] };
    for (const key of keys) expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  });
});

describe('delivery log', () => {
  it('shows a delivery while it retries and after it closed, matching what the receiver saw attempt for attempt', async () => {
    const r = await receiver(failThenSucceed(1, { status: 503 }));
    const requestId = await submitWithHook(r.url);
    await r.waitFor(1);

    const retrying = await logWhen(requestId, (log) => log.attempts.length === 1);
    expect(retrying).toMatchObject({ request_id: requestId, webhook_id: `msg_${requestId}`, state: 'retrying' });
    expect(retrying.url).toBe(r.url);
    const [first] = retrying.attempts;
    expect(first).toMatchObject({ attempt: 1, trigger: 'schedule', status_code: 503, error: null });
    expect(first!.latency_ms).toBeGreaterThanOrEqual(0);
    expect(Date.parse(first!.next_attempt_at!)).toBeGreaterThan(Date.parse(first!.at));
    expect(retrying.next_attempt_at).toBe(first!.next_attempt_at);

    const delivered = await logWhen(requestId, (log) => log.state === 'delivered');
    expect(delivered.attempts.map((a) => a.status_code)).toEqual([503, 200]);
    expect(delivered.next_attempt_at).toBeNull();
    expect(r.deliveries).toHaveLength(2);
    // The log's times are when each attempt was made: attempt i is logged before the receiver saw call i, and after
    // it saw call i - 1 (an order, which no load on the machine can turn around, unlike a bound on the gap).
    delivered.attempts.forEach((a, i) => {
      expect(Date.parse(a.at)).toBeLessThanOrEqual(r.deliveries[i]!.at);
      if (i > 0) expect(Date.parse(a.at)).toBeGreaterThanOrEqual(r.deliveries[i - 1]!.at);
    });
  });

  it('keeps the log of a delivery its first attempt settled in the request’s result, not in a memo write', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const requestId = await submitWithHook(r.url);
    const log = await logWhen(requestId, (l) => l.state === 'delivered');
    expect(log.attempts.map((a) => [a.attempt, a.trigger, a.status_code])).toEqual([[1, 'schedule', 200]]);
    expect(Date.parse(log.attempts[0]!.at)).toBeLessThanOrEqual(r.deliveries[0]!.at);

    const connection = await Connection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
    try {
      const handle = new Client({ connection }).workflow.getHandle(requestId);
      const events = (await handle.fetchHistory()).events ?? [];
      const modified = temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED;
      expect(events.filter((e) => e.eventType === modified)).toHaveLength(0);
      expect(await handle.result()).toMatchObject({ status: 'OK', webhookDelivery: { state: 'delivered' } });
    } finally {
      await connection.close();
    }
    // The result the client fetches is the model's output alone.
    const result = await stack.api(`/${APP}/requests/${requestId}`);
    expect(await result.json()).toEqual({ echo: { prompt: 'a cat' } });
  });

  it('records a URL refused by the egress rules at delivery time, and gives up after the schedule', async () => {
    const r = await receiver(() => ({ status: 200 }));
    // Loopback written as IPv4-mapped IPv6: valid at submit, refused when connecting.
    const requestId = await submitWithHook(`http://[::ffff:127.0.0.1]:${r.port}/hook`);

    const log = await logWhen(requestId, (l) => l.state === 'exhausted');

    expect(log.attempts).toHaveLength(3);
    for (const attempt of log.attempts) {
      expect(attempt.status_code).toBeNull();
      // The tenant learns that the address is not public, not which internal address it was.
      expect(attempt.error).toBe('refused: not a public address');
    }
    expect(r.deliveries).toHaveLength(0);
  });

  it('is 404 for another owner, for a request without a webhook, and for an unknown request', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const requestId = await submitWithHook(r.url);
    await logWhen(requestId, (l) => l.state === 'delivered');

    expect((await deliveryLog(requestId, OTHER_KEY)).status).toBe(404);
    expect((await redeliver(requestId, OTHER_KEY)).status).toBe(404);
    expect((await stack.api(`/acme/other/requests/${requestId}/webhook`)).status).toBe(404);

    const { request_id: noHook } = await submitJson(stack, `/${APP}`, { prompt: 'no hook' });
    await eventually(async () => {
      const res = await stack.api(`/${APP}/requests/${noHook}/status`);
      return ((await res.json()) as { status: string }).status === 'COMPLETED' ? true : undefined;
    });
    expect((await deliveryLog(noHook)).status).toBe(404);
    expect((await redeliver(noHook)).status).toBe(404);
    expect((await deliveryLog('00000000-0000-0000-0000-000000000000')).status).toBe(404);
  });
});

describe('redelivery', () => {
  it('sends a delivered webhook again with the same webhook-id, keeping the earlier attempts in the log', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const requestId = await submitWithHook(r.url);
    await logWhen(requestId, (l) => l.state === 'delivered');

    const res = await redeliver(requestId);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'REDELIVERY_REQUESTED', webhook_id: `msg_${requestId}` });
    await r.waitFor(2);
    const log = await logWhen(requestId, (l) => l.attempts.length === 2 && l.state === 'delivered');

    expect(log.attempts.map((a) => [a.attempt, a.trigger, a.status_code])).toEqual([
      [1, 'schedule', 200],
      [2, 'redelivery', 200],
    ]);
    expect(r.deliveries.map((d) => d.headers['webhook-id'])).toEqual([`msg_${requestId}`, `msg_${requestId}`]);
    expect(r.deliveries[1]!.body).toBe(r.deliveries[0]!.body);

    // Another request has another id.
    const other = await submitWithHook(r.url);
    await r.waitFor(3);
    expect(r.deliveries[2]!.headers['webhook-id']).toBe(`msg_${other}`);
  });

  it('sends again after the receiver said 410 Gone, and again after that (runs chain their logs)', async () => {
    let fixed = false;
    const r = await receiver(() => ({ status: fixed ? 200 : 410 }));
    const requestId = await submitWithHook(r.url);
    await logWhen(requestId, (l) => l.state === 'gone');

    fixed = true;
    expect((await redeliver(requestId)).status).toBe(202);
    await logWhen(requestId, (l) => l.state === 'delivered');
    expect((await redeliver(requestId)).status).toBe(202);
    const log = await logWhen(requestId, (l) => l.attempts.length === 3 && l.state === 'delivered');

    expect(log.attempts.map((a) => [a.trigger, a.status_code])).toEqual([
      ['schedule', 410],
      ['redelivery', 200],
      ['redelivery', 200],
    ]);
    expect(r.deliveries).toHaveLength(3);
  });
});

describe('payloads', () => {
  it('sends payload null with payload_error when the output is over the limit; the result stays fetchable', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const requestId = await submitWithHook(r.url, { size: 5000 });
    const delivery = await r.waitFor(1);

    expect(delivery.json).toEqual({
      request_id: requestId,
      gateway_request_id: requestId,
      status: 'OK',
      payload: null,
      error: null,
      payload_error: expect.stringMatching(/more than the 2048 bytes.*response_url/),
    });
    const result = await stack.api(`/${APP}/requests/${requestId}`);
    expect(((await result.json()) as { blob: string }).blob).toHaveLength(5000);
  });
});
