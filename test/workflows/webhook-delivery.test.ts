import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { DeliverWebhookInput, DeliveryAttemptResult } from '../../src/activities';
import { webhookDelivery } from '../../src/workflows';
import {
  DeliveryState,
  MAX_LOGGED_ATTEMPTS,
  deliveryReportQuery,
  redeliverSignal,
  webhookWorkflowId,
  type DeliveryAttempt,
  type WebhookDeliveryInput,
} from '../../src/workflows/webhook-delivery/messages';
import { startTimeSkipping, until, type TimeSkipping } from './time-skipping';

/**
 * The delivery schedule with a mocked `deliverWebhook` on the time-skipping server: each test scripts the answers per
 * request, and hours of retries pass in moments. (test/webhooks/schedule.test.ts runs real POSTs.)
 */
const HOUR = 3_600_000;
const MINUTE = 60_000;

/** Scripted answers per request id; an attempt past the script is delivered. */
const scripts = new Map<string, DeliveryAttemptResult[]>();
/** The run (of the delivery workflow) each attempt came from, per request. */
const runsSeen = new Map<string, Set<string>>();

const failure = (statusCode: number, retryAfterMs?: number): DeliveryAttemptResult => ({
  delivered: false,
  statusCode,
  latencyMs: 1,
  retryAfterMs,
});

let ts: TimeSkipping;
beforeAll(async () => {
  ts = await startTimeSkipping({
    async deliverWebhook(input: DeliverWebhookInput): Promise<DeliveryAttemptResult> {
      const runId = Context.current().info.workflowExecution!.runId;
      runsSeen.set(input.requestId, (runsSeen.get(input.requestId) ?? new Set()).add(runId));
      return scripts.get(input.requestId)?.shift() ?? { delivered: true, statusCode: 200, latencyMs: 1 };
    },
  });
}, 120_000);
afterAll(async () => ts?.stop());

async function start(
  answers: DeliveryAttemptResult[],
  input: Partial<WebhookDeliveryInput> = {},
  { redeliver = false }: { redeliver?: boolean } = {},
) {
  const requestId = randomUUID();
  scripts.set(requestId, [...answers]);
  const options = {
    workflowId: webhookWorkflowId(requestId),
    taskQueue: ts.taskQueue,
    args: [
      {
        requestId,
        owner: 'alice',
        url: 'https://receiver.test/hook',
        body: { request_id: requestId, gateway_request_id: requestId, status: 'OK', payload: { ok: 1 }, error: null },
        scheduleMs: [0, HOUR, HOUR, HOUR],
        attemptTimeoutMs: 1000,
        ...input,
      },
    ] as [WebhookDeliveryInput],
  };
  // A redelivery of a closed delivery starts its run with the signal, as the API does.
  const handle = redeliver
    ? await ts.env.client.workflow.signalWithStart(webhookDelivery, {
        ...options,
        signal: redeliverSignal,
        signalArgs: [],
      })
    : await ts.env.client.workflow.start(webhookDelivery, options);
  return { requestId, handle };
}

const gaps = (attempts: DeliveryAttempt[]) =>
  attempts.slice(1).map((a, i) => new Date(a.at).getTime() - new Date(attempts[i]!.at).getTime());

describe('webhook delivery schedule (mocked attempts, time-skipping)', () => {
  it('delivers on the third attempt after two 500s, each retry an hour (±10 %) after the previous one', async () => {
    const { handle } = await start([failure(500), failure(500)]);
    const report = await handle.result();
    expect(report.state).toBe(DeliveryState.Delivered);
    expect(report.attempts.map((a) => [a.attempt, a.statusCode])).toEqual([
      [1, 500],
      [2, 500],
      [3, 200],
    ]);
    for (const gap of gaps(report.attempts)) {
      expect(gap).toBeGreaterThanOrEqual(0.9 * HOUR);
      expect(gap).toBeLessThanOrEqual(1.1 * HOUR + 1000);
    }
    // Each entry said when the next one was due (a timer's firing is exact to within the workflow task's latency).
    const announced = new Date(report.attempts[0]!.nextAttemptAt!).getTime();
    expect(Math.abs(announced - new Date(report.attempts[1]!.at).getTime())).toBeLessThan(1000);
    expect(report.nextAttemptAt).toBeUndefined();
  });

  it("waits as long as the receiver's Retry-After asks when that is longer than the schedule's delay", async () => {
    const { handle } = await start([failure(503, 5 * HOUR)], { scheduleMs: [0, MINUTE] });
    const report = await handle.result();
    expect(report.state).toBe(DeliveryState.Delivered);
    expect(gaps(report.attempts)[0]).toBeGreaterThanOrEqual(5 * HOUR);
  });

  it('stops at a 410 Gone: no further attempt, state gone', async () => {
    const { handle } = await start([failure(410)]);
    const report = await handle.result();
    expect(report.state).toBe(DeliveryState.Gone);
    expect(report.attempts).toHaveLength(1);
    expect(ts.sinkCalls.webhookDeliveryEnded).toContainEqual(['gone', expect.any(Number)]);
  });

  it('is exhausted after the last scheduled attempt fails, and reports that end once', async () => {
    const { handle } = await start([failure(500), failure(500), failure(500), failure(500)]);
    const before = ts.sinkCalls.webhookDeliveryEnded.filter(([r]) => r === 'exhausted').length;
    const report = await handle.result();
    expect(report.state).toBe(DeliveryState.Exhausted);
    expect(report.attempts).toHaveLength(4);
    expect(ts.sinkCalls.webhookDeliveryEnded.filter(([r]) => r === 'exhausted').length).toBe(before + 1);
  });

  it('makes a redelivery at once, before the scheduled retry, which stays due', async () => {
    const { handle } = await start([failure(500), failure(500)], { scheduleMs: [0, 10 * HOUR] });
    await until(async () => ((await handle.query(deliveryReportQuery)).attempts.length === 1 ? true : undefined));
    await handle.signal(redeliverSignal);
    const afterRedelivery = await until(async () => {
      const report = await handle.query(deliveryReportQuery);
      return report.attempts.length === 2 ? report : undefined;
    });
    expect(afterRedelivery.attempts[1]!.trigger).toBe('redelivery');
    expect(afterRedelivery.state).toBe(DeliveryState.Retrying);
    // The scheduled attempt is still due when it was.
    expect(afterRedelivery.nextAttemptAt).toBe(afterRedelivery.attempts[0]!.nextAttemptAt);

    const report = await handle.result();
    expect(report.attempts.map((a) => a.trigger)).toEqual(['schedule', 'redelivery', 'schedule']);
    expect(report.state).toBe(DeliveryState.Delivered);
  });
});

describe('bounded delivery history', () => {
  it('continues as new when the history gets long, carrying the schedule and the numbered log', async () => {
    const attempts = 12;
    const { requestId, handle } = await start(
      Array.from({ length: attempts - 1 }, () => failure(500)),
      {
        scheduleMs: Array.from({ length: attempts }, (_, i) => (i === 0 ? 0 : MINUTE)),
        continueAsNewAfterEvents: 20,
      },
    );
    const report = await handle.result();
    expect(report.state).toBe(DeliveryState.Delivered);
    expect(report.attempts.map((a) => a.attempt)).toEqual(Array.from({ length: attempts }, (_, i) => i + 1));
    const runs = [...runsSeen.get(requestId)!];
    expect(runs.length).toBeGreaterThan(2);
    for (const runId of runs) {
      const history = await ts.env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
      // The limit, plus the one attempt (about ten events) that may be under way when it is reached.
      expect(history.events?.length).toBeLessThanOrEqual(20 + 12);
    }
  });

  it(`keeps the last ${MAX_LOGGED_ATTEMPTS} attempts of a long log and counts the older ones`, async () => {
    const previousAttempts: DeliveryAttempt[] = Array.from({ length: MAX_LOGGED_ATTEMPTS }, (_, i) => ({
      attempt: 6 + i,
      at: new Date(0).toISOString(),
      trigger: 'redelivery',
      statusCode: 500,
      latencyMs: 1,
    }));
    const { handle } = await start([], { scheduleMs: [], previousAttempts, earlierAttempts: 5 }, { redeliver: true });
    const report = await handle.result();
    expect(report.attempts).toHaveLength(MAX_LOGGED_ATTEMPTS);
    expect(report.earlierAttempts).toBe(6);
    expect(report.attempts.at(-1)).toMatchObject({ attempt: 5 + MAX_LOGGED_ATTEMPTS + 1, statusCode: 200 });
    expect(report.attempts[0]!.attempt).toBe(7);
  });
});
