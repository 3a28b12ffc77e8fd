import { defineQuery, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WebhookBody } from '../domain/request';

export interface WebhookDeliveryInput {
  requestId: string;
  url: string;
  body: WebhookBody;
  /** Delay before each attempt, in ms; the first is usually 0 (deliver at once). */
  scheduleMs: number[];
  attemptTimeoutMs: number;
}

/** One attempt as the delivery log shows it. */
export interface DeliveryAttempt {
  attempt: number;
  at: string;
  statusCode?: number;
  error?: string;
  latencyMs: number;
  nextAttemptAt?: string;
}

export const DeliveryState = {
  Retrying: 'retrying',
  Delivered: 'delivered',
  Exhausted: 'exhausted',
  /** The receiver answered 410 Gone: it asked us to stop. */
  Gone: 'gone',
} as const;
export type DeliveryState = (typeof DeliveryState)[keyof typeof DeliveryState];

export interface DeliveryReport {
  state: DeliveryState;
  attempts: DeliveryAttempt[];
}

export const deliveryReportQuery = defineQuery<DeliveryReport>('deliveryReport');

// Spreads retries of many receivers that failed together, so they do not all return at once.
const JITTER = 0.1;

/**
 * Delivers one webhook on a durable schedule: each attempt is an activity, each wait a Temporal
 * timer, so worker or server restarts resume the schedule where it was.
 */
export async function webhookDelivery(input: WebhookDeliveryInput): Promise<DeliveryReport> {
  const report: DeliveryReport = { state: DeliveryState.Retrying, attempts: [] };
  setHandler(deliveryReportQuery, () => report);

  const { deliverWebhook } = proxyActivities<Activities>({
    startToCloseTimeout: input.attemptTimeoutMs + 5_000,
    // These retries only cover a worker that died mid-attempt; HTTP failures are returned, not thrown.
    retry: { initialInterval: '1s', maximumInterval: '1m', backoffCoefficient: 2 },
  });

  let delay = input.scheduleMs[0] ?? 0;
  for (let i = 0; i < input.scheduleMs.length; i++) {
    if (delay > 0) await sleep(delay);
    const at = new Date();
    const result = await deliverWebhook({
      requestId: input.requestId,
      url: input.url,
      body: input.body,
      attempt: i + 1,
    });
    const entry: DeliveryAttempt = {
      attempt: i + 1,
      at: at.toISOString(),
      statusCode: result.statusCode,
      error: result.error,
      latencyMs: result.latencyMs,
    };
    report.attempts.push(entry);
    if (result.delivered) {
      report.state = DeliveryState.Delivered;
      return report;
    }
    if (result.statusCode === 410) {
      report.state = DeliveryState.Gone;
      return report;
    }
    const next = input.scheduleMs[i + 1];
    if (next === undefined) break;
    delay = Math.max(jittered(next), result.retryAfterMs ?? 0);
    entry.nextAttemptAt = new Date(Date.now() + delay).toISOString();
  }
  report.state = DeliveryState.Exhausted;
  return report;
}

function jittered(ms: number): number {
  // Math.random is deterministic inside a workflow (seeded per execution), so replays agree.
  return Math.round(ms * (1 - JITTER + Math.random() * 2 * JITTER));
}
