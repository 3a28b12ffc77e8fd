import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { createDeliverWebhook } from '../../src/activities/deliver-webhook';
import { loadConfig } from '../../src/config';
import type { WebhookBody } from '../../src/workflows/shared/request';
import { createEgressAgent } from '../../src/egress/agent';
import { EgressPolicy } from '../../src/egress/policy';
import { ensureTemporalTestServer } from '../../src/temporal/cli';
import { readDeliveryBody } from '../../src/webhooks/deliveries';
import { INLINE_BODY_MAX_BYTES } from '../../src/workflows/webhook-delivery/payload';
import { WebhookKeys } from '../../src/webhooks/keys';
import { WebhookSigner } from '../../src/webhooks/signing';
import {
  DeliveryState,
  deliveryReportQuery,
  initialDeliveryMemo,
  redeliverSignal,
  webhookWorkflowId,
  type DeliveryReport,
} from '../../src/workflows/webhook-delivery/messages';
import { webhookDelivery } from '../../src/workflows';
import { failThenSucceed, Receiver, type Answer } from './receiver';

/**
 * The delivery workflow against the time-skipping test server: hours of retry schedule pass in
 * moments, while every attempt is a real signed POST to a receiver on 127.0.0.1.
 */
const DEFAULT_SCHEDULE = loadConfig({}).webhook.scheduleMs;
const ATTEMPT_TIMEOUT_MS = 400;
const HOUR = 3_600_000;

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const taskQueue = `webhooks-${randomUUID()}`;

beforeAll(async () => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  } catch {
    // Installed by another suite in this jest worker.
  }
  const path = await ensureTemporalTestServer({ projectRoot: resolve(__dirname, '../..') });
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  const keysDir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'keys-'));
  const deliverWebhook = createDeliverWebhook({
    userAgent: 'test',
    dispatcher: createEgressAgent(new EgressPolicy(['127.0.0.1/32'])),
    signer: new WebhookSigner(() => WebhookKeys.open(keysDir)),
    loadBody: (execution) => readDeliveryBody(env.client, execution),
  });
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
    activities: { deliverWebhook },
    // The bundle's metrics interceptor reports to a sink; this worker has no metrics to move.
    sinks: { queueMetrics: { requestCompleted: { fn() {} }, webhookDeliveryEnded: { fn() {} } } },
  });
  running = worker.run();
}, 120_000);

afterAll(async () => {
  if (worker?.getState() === 'RUNNING') worker.shutdown();
  await running;
  await env?.teardown();
});

const receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function receiver(answer: (n: number) => Answer): Promise<Receiver> {
  const r = await Receiver.start(answer);
  receivers.push(r);
  return r;
}

function okBody(requestId: string, payload: unknown = { images: [{ url: 'https://example.test/cat.png' }] }) {
  return { request_id: requestId, gateway_request_id: requestId, status: 'OK', payload, error: null } as WebhookBody;
}

async function startDelivery(url: string, options: { scheduleMs?: number[]; body?: (id: string) => WebhookBody } = {}) {
  const requestId = randomUUID();
  const body = (options.body ?? okBody)(requestId);
  const handle = await env.client.workflow.start(webhookDelivery, {
    workflowId: webhookWorkflowId(requestId),
    taskQueue,
    args: [
      {
        requestId,
        owner: 'alice',
        url,
        body,
        scheduleMs: options.scheduleMs ?? DEFAULT_SCHEDULE,
        attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
      },
    ],
    memo: initialDeliveryMemo(url),
  });
  return { requestId, body, handle };
}

const ms = (iso: string | undefined) => new Date(iso!).getTime();

/** The log and the receiver agree, attempt for attempt. */
function expectLogMatches(report: DeliveryReport, r: Receiver, answers: (n: number) => Answer) {
  const received = report.attempts.filter((a) => a.error === undefined || a.error.startsWith('timed out'));
  expect(received).toHaveLength(r.deliveries.length);
  received.forEach((a, i) => {
    const answer = answers(r.deliveries[i]!.n);
    if (answer === 'hang') expect(a.error).toBe(`timed out after ${ATTEMPT_TIMEOUT_MS} ms`);
    else expect(a.statusCode).toBe(answer.status);
  });
}

describe('webhook delivery schedule (time-skipping server)', () => {
  const K = 3;
  it.each([
    ['answers 500', { status: 500 }],
    ['does not answer within the attempt timeout', 'hang'],
    ['redirects with 302 (never followed)', { status: 302, headers: { location: '/elsewhere' } }],
  ] as [string, Answer][])(
    `delivers on attempt ${K} when the receiver first %s ${K - 1} times`,
    async (_kind, failure) => {
      const answers = failThenSucceed(K - 1, failure);
      const r = await receiver(answers);
      const { handle, body, requestId } = await startDelivery(r.url);

      const report = await handle.result();

      expect(report.state).toBe(DeliveryState.Delivered);
      expect(report.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      expect(r.deliveries).toHaveLength(K);
      // Every attempt POSTed the same body to the URL itself: the redirect target was never asked.
      expect(r.deliveries.every((d) => d.method === 'POST' && d.path === '/hook')).toBe(true);
      expect(r.deliveries.every((d) => d.body === JSON.stringify(body))).toBe(true);
      // One idempotency key for every attempt of this request.
      expect(new Set(r.deliveries.map((d) => d.headers['webhook-id']))).toEqual(new Set([`msg_${requestId}`]));
      expectLogMatches(report, r, answers);
      expect(report.attempts.at(-1)?.nextAttemptAt).toBeUndefined();
      // The waits follow the schedule: 0 s, then 5 s, then 5 min (±10 % jitter).
      const gap = (i: number) => ms(report.attempts[i]!.at) - ms(report.attempts[i - 1]!.at);
      expect(gap(1)).toBeGreaterThanOrEqual(4_500);
      expect(gap(2)).toBeGreaterThanOrEqual(0.9 * 5 * 60_000);
    },
  );

  it(`delivers on attempt ${K} when the connection is refused ${K - 1} times`, async () => {
    const r = await receiver(() => ({ status: 204 }));
    await r.close();
    const { handle } = await startDelivery(r.url);
    // Attempt 1 is at once, attempt 2 after ~5 s: skip past it, then bring the receiver up.
    for (let i = 0; i < 50; i++) {
      const seen = await handle.query(deliveryReportQuery);
      if (seen.attempts.length >= K - 1) break;
      await env.sleep('2s');
    }
    await r.listen();

    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Delivered);
    expect(report.attempts).toHaveLength(K);
    for (const failed of report.attempts.slice(0, K - 1)) {
      expect(failed.error).toMatch(/^ECONNREFUSED/);
      expect(failed.statusCode).toBeUndefined();
    }
    expect(report.attempts[K - 1]!.statusCode).toBe(204);
    expect(r.deliveries).toHaveLength(1);
  });

  it('stops at once when the receiver answers 410 Gone', async () => {
    const answers = (n: number): Answer => ({ status: n === 1 ? 500 : 410 });
    const r = await receiver(answers);
    const { handle } = await startDelivery(r.url);

    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Gone);
    expect(report.attempts.map((a) => a.statusCode)).toEqual([500, 410]);
    expect(report.nextAttemptAt).toBeUndefined();
    // The workflow is over: however much time passes, nothing more is sent.
    await env.sleep('30h');
    expect(r.deliveries).toHaveLength(2);
  });

  it('waits as long as Retry-After asks on 503 and 429, but never less than the schedule', async () => {
    const answers = (n: number): Answer =>
      n === 1
        ? { status: 503, headers: { 'retry-after': '7200' } }
        : n === 2
          ? { status: 429, headers: { 'retry-after': '1' } }
          : { status: 200 };
    const r = await receiver(answers);
    const { handle } = await startDelivery(r.url);

    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Delivered);
    const [first, second, third] = report.attempts;
    // Schedule says 5 s; the receiver asked for 2 h.
    expect(ms(second!.at) - ms(first!.at)).toBeGreaterThanOrEqual(2 * HOUR);
    expect(ms(first!.nextAttemptAt)).toBeGreaterThanOrEqual(ms(first!.at) + 2 * HOUR);
    // Schedule says 5 min; the receiver's 1 s does not shorten it.
    expect(ms(third!.at) - ms(second!.at)).toBeGreaterThanOrEqual(0.9 * 5 * 60_000);
    expectLogMatches(report, r, answers);
  });

  it('spreads the default schedule over at least 24 hours and 10 attempts before giving up', async () => {
    const answers = (): Answer => ({ status: 500 });
    const r = await receiver(answers);
    const { handle } = await startDelivery(r.url);

    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Exhausted);
    expect(DEFAULT_SCHEDULE.length).toBeGreaterThanOrEqual(10);
    expect(report.attempts).toHaveLength(DEFAULT_SCHEDULE.length);
    expect(r.deliveries).toHaveLength(DEFAULT_SCHEDULE.length);
    const span = ms(report.attempts.at(-1)!.at) - ms(report.attempts[0]!.at);
    expect(span).toBeGreaterThanOrEqual(24 * HOUR);
    report.attempts.slice(1).forEach((a, i) => {
      const gap = ms(a.at) - ms(report.attempts[i]!.at);
      expect(gap).toBeGreaterThanOrEqual(0.9 * DEFAULT_SCHEDULE[i + 1]!);
      expect(gap).toBeLessThanOrEqual(1.1 * DEFAULT_SCHEDULE[i + 1]! + 1_000);
      // What the log promised is what happened.
      expect(Math.abs(ms(report.attempts[i]!.nextAttemptAt) - ms(a.at))).toBeLessThan(1_000);
    });
    expectLogMatches(report, r, answers);
  });

  it('sends at once on a redelivery request while retrying, and stops the schedule once that succeeds', async () => {
    const answers = failThenSucceed(1, { status: 500 });
    const r = await receiver(answers);
    const { handle } = await startDelivery(r.url, { scheduleMs: [0, 10 * HOUR, 10 * HOUR] });
    await r.waitFor(1);

    await handle.signal(redeliverSignal);
    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Delivered);
    expect(report.attempts.map((a) => [a.trigger, a.statusCode])).toEqual([
      ['schedule', 500],
      ['redelivery', 200],
    ]);
    // Well before the 10 h the schedule would have waited.
    expect(ms(report.attempts[1]!.at) - ms(report.attempts[0]!.at)).toBeLessThan(HOUR);
    expect(r.deliveries).toHaveLength(2);
  });

  it('sends a body too large to travel with each attempt exactly as given', async () => {
    const r = await receiver(failThenSucceed(1, { status: 500 }));
    const big = { text: 'é'.repeat(40_000) };
    const { handle, body } = await startDelivery(r.url, { body: (id) => okBody(id, big) });

    const report = await handle.result();

    expect(report.state).toBe(DeliveryState.Delivered);
    expect(r.deliveries.map((d) => d.body)).toEqual([JSON.stringify(body), JSON.stringify(body)]);
    // The body is stored once, in the workflow's input, not again with every attempt.
    const { events } = await handle.fetchHistory();
    const attemptInputs = events!
      .map((e) => e.activityTaskScheduledEventAttributes?.input?.payloads ?? [])
      .filter((payloads) => payloads.length > 0);
    expect(attemptInputs).toHaveLength(2);
    for (const payloads of attemptInputs) {
      expect(payloads.reduce((n, p) => n + (p.data?.length ?? 0), 0)).toBeLessThan(INLINE_BODY_MAX_BYTES);
    }
  });
});
