import {
  ActivityFailure,
  ParentClosePolicy,
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
  startChild,
  upsertMemo,
} from '@temporalio/workflow';
import type { Activities, DeliveryAttemptResult } from '../activities';
import type { WebhookBody } from '../domain/request';
import { INLINE_BODY_MAX_BYTES, utf8Length } from '../webhooks/payload';
import { queueMetrics } from '../observability/workflow-sinks';

export interface WebhookDeliveryInput {
  requestId: string;
  /** Owner of the request: named in fal's signature headers, and whose Standard Webhooks secret signs. */
  owner: string;
  url: string;
  /** The body exactly as it will be sent (already fitted to the payload size limit). */
  body: WebhookBody;
  /** Delay before each scheduled attempt, in ms; the first is usually 0 (deliver at once). Empty = none. */
  scheduleMs: number[];
  attemptTimeoutMs: number;
  /**
   * The log so far: of earlier runs under this workflow id (a redelivery after the delivery had closed), or of the
   * first attempt, which the request workflow made itself.
   */
  previousAttempts?: DeliveryAttempt[];
  /** When the first scheduled attempt of this run is due (epoch ms); default: `scheduleMs[0]` after the start. */
  firstAttemptAt?: number;
  /** When the request's result existed (epoch ms), which delivery latency counts from; default: this run's start. */
  resultAt?: number;
}

export const AttemptTrigger = {
  /** Due on the retry schedule. */
  Schedule: 'schedule',
  /** Asked for through the redeliver API. */
  Redelivery: 'redelivery',
} as const;
export type AttemptTrigger = (typeof AttemptTrigger)[keyof typeof AttemptTrigger];

/** One attempt as the delivery log shows it. */
export interface DeliveryAttempt {
  attempt: number;
  /** When the attempt was made (workflow time). */
  at: string;
  trigger: AttemptTrigger;
  statusCode?: number;
  error?: string;
  latencyMs: number;
  /** When the next scheduled attempt is due, if one is. */
  nextAttemptAt?: string;
}

export const DeliveryState = {
  /** Not delivered yet; an attempt is due at `nextAttemptAt` (or under way). */
  Retrying: 'retrying',
  /** The latest attempt got a 2xx. */
  Delivered: 'delivered',
  /** Every scheduled attempt failed and none is left. */
  Exhausted: 'exhausted',
  /** The receiver answered 410 Gone: it asked us to stop. */
  Gone: 'gone',
} as const;
export type DeliveryState = (typeof DeliveryState)[keyof typeof DeliveryState];

/** The delivery log: kept in the workflow memo after every attempt, so reading it never needs a worker. */
export interface DeliveryReport {
  url: string;
  state: DeliveryState;
  attempts: DeliveryAttempt[];
  nextAttemptAt?: string;
}

/** Memo key under which a delivery workflow publishes its {@link DeliveryReport}. */
export const DELIVERY_MEMO_KEY = 'delivery';

export const deliveryReportQuery = defineQuery<DeliveryReport>('deliveryReport');

/** Sends the webhook once more, now; on a delivery still retrying, the schedule goes on if it fails. */
export const redeliverSignal = defineSignal('redeliver');

/** Workflow id of a request's webhook delivery; every run (first delivery, redeliveries) shares it. */
export function webhookWorkflowId(requestId: string): string {
  return `${requestId}/webhook`;
}

// Spreads retries of many receivers that failed together, so they do not all return at once.
const JITTER = 0.1;
// A receiver's Retry-After can postpone an attempt, but not indefinitely.
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Delivers one webhook on a durable schedule: each attempt is an activity, each wait a Temporal
 * timer, so worker or server restarts resume the schedule where it was. Every attempt is recorded
 * in the memo (see {@link DeliveryReport}); {@link redeliverSignal} adds an attempt on demand.
 */
export async function webhookDelivery(input: WebhookDeliveryInput): Promise<DeliveryReport> {
  const report: DeliveryReport = {
    url: input.url,
    state: DeliveryState.Retrying,
    attempts: [...(input.previousAttempts ?? [])],
    nextAttemptAt: input.firstAttemptAt === undefined ? undefined : new Date(input.firstAttemptAt).toISOString(),
  };
  let redeliveryRequested = false;
  setHandler(deliveryReportQuery, () => report);
  setHandler(redeliverSignal, () => {
    redeliveryRequested = true;
  });

  let scheduled = 0;
  let dueAt: number | undefined =
    input.firstAttemptAt ?? (input.scheduleMs.length > 0 ? Date.now() + jittered(input.scheduleMs[0] ?? 0) : undefined);
  for (;;) {
    if (!redeliveryRequested) {
      if (dueAt === undefined) break;
      const wait = dueAt - Date.now();
      // Woken early by a redelivery request: that attempt goes first, the scheduled one stays due.
      if (wait > 0 && (await condition(() => redeliveryRequested, wait))) continue;
    }
    const trigger = redeliveryRequested ? AttemptTrigger.Redelivery : AttemptTrigger.Schedule;
    if (trigger === AttemptTrigger.Redelivery) redeliveryRequested = false;
    else scheduled++;

    const { entry, result } = await attempt(input, report, trigger);
    if (result.delivered || result.statusCode === 410) {
      dueAt = undefined;
    } else if (trigger === AttemptTrigger.Schedule) {
      dueAt = nextDue(input.scheduleMs[scheduled], result);
      if (dueAt === undefined) report.state = DeliveryState.Exhausted;
    } else if (dueAt === undefined) {
      // A failed redelivery with nothing left on the schedule.
      report.state = DeliveryState.Exhausted;
    }
    entry.nextAttemptAt = dueAt === undefined ? undefined : new Date(dueAt).toISOString();
    report.nextAttemptAt = entry.nextAttemptAt;
    upsertMemo({ [DELIVERY_MEMO_KEY]: report });
  }
  return report;
}

/**
 * A request's webhook, from the request workflow itself: the first attempt right there (one activity, no second
 * workflow, so the receiver hears of the result within milliseconds), and only if that fails, a
 * {@link webhookDelivery} workflow that outlives the request for the rest of the schedule. The log of an attempt made
 * here is in the request's memo (under {@link DELIVERY_MEMO_KEY}) until a delivery workflow takes it over.
 * A first attempt that is not due at once, or a body too large to pass to an activity, goes to the workflow directly.
 */
export async function deliverFromRequest(input: WebhookDeliveryInput): Promise<void> {
  const resultAt = Date.now();
  let carryOn: WebhookDeliveryInput | undefined = { ...input, resultAt };
  if (input.scheduleMs[0] === 0 && inlineBodyOf(input) !== undefined) {
    const report: DeliveryReport = { url: input.url, state: DeliveryState.Retrying, attempts: [] };
    const { entry, result } = await attempt(input, report, AttemptTrigger.Schedule);
    const dueAt = result.delivered || result.statusCode === 410 ? undefined : nextDue(input.scheduleMs[1], result);
    if (report.state === DeliveryState.Retrying && dueAt === undefined) report.state = DeliveryState.Exhausted;
    entry.nextAttemptAt = dueAt === undefined ? undefined : new Date(dueAt).toISOString();
    report.nextAttemptAt = entry.nextAttemptAt;
    upsertMemo({ [DELIVERY_MEMO_KEY]: report });
    carryOn =
      dueAt === undefined
        ? undefined
        : {
            ...input,
            scheduleMs: input.scheduleMs.slice(1),
            firstAttemptAt: dueAt,
            previousAttempts: report.attempts,
            resultAt,
          };
    if (!carryOn) queueMetrics.webhookDeliveryEnded(report.state, Date.now() - resultAt);
  }
  if (carryOn) {
    await startChild(webhookDelivery, {
      workflowId: webhookWorkflowId(input.requestId),
      parentClosePolicy: ParentClosePolicy.ABANDON,
      args: [carryOn],
      memo: initialDeliveryMemo(input.url, carryOn.previousAttempts, carryOn.firstAttemptAt),
    });
  }
}

/** One attempt (an activity) and its entry in the report; a 2xx or 410 settles the report's state. */
async function attempt(
  input: WebhookDeliveryInput,
  report: DeliveryReport,
  trigger: AttemptTrigger,
): Promise<{ entry: DeliveryAttempt; result: DeliveryAttemptResult }> {
  const { deliverWebhook } = proxyActivities<Activities>({
    startToCloseTimeout: input.attemptTimeoutMs + 10_000,
    // These retries only cover a worker that died mid-attempt; HTTP failures are returned, not thrown.
    retry: { initialInterval: '1s', maximumInterval: '1m', backoffCoefficient: 2, maximumAttempts: 10 },
  });
  const at = new Date();
  const number = report.attempts.length + 1;
  const result = await deliverWebhook({
    requestId: input.requestId,
    owner: input.owner,
    url: input.url,
    attempt: number,
    timeoutMs: input.attemptTimeoutMs,
    body: inlineBodyOf(input),
  }).catch(attemptThatCouldNotRun);
  const entry: DeliveryAttempt = {
    attempt: number,
    at: at.toISOString(),
    trigger,
    statusCode: result.statusCode,
    error: result.error,
    latencyMs: result.latencyMs,
  };
  report.attempts.push(entry);
  if (result.delivered) report.state = DeliveryState.Delivered;
  else if (result.statusCode === 410) report.state = DeliveryState.Gone;
  return { entry, result };
}

/**
 * A large body stays out of each attempt's history events; the attempt reads it from the delivery run's input
 * (so an attempt made from the request workflow, whose input is the model's, needs the body inline).
 */
function inlineBodyOf(input: WebhookDeliveryInput): WebhookBody | undefined {
  return utf8Length(JSON.stringify(input.body)) <= INLINE_BODY_MAX_BYTES ? input.body : undefined;
}

/** When the next scheduled attempt is due after a failed one: its delay, or later if the receiver asked for it. */
function nextDue(delayMs: number | undefined, failed: DeliveryAttemptResult): number | undefined {
  if (delayMs === undefined) return undefined;
  const retryAfter = Math.min(failed.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
  return Date.now() + Math.max(jittered(delayMs), retryAfter);
}

/** The memo a delivery run starts with, so the log is readable before its first attempt. */
export function initialDeliveryMemo(
  url: string,
  previousAttempts: DeliveryAttempt[] = [],
  nextAttemptAt?: number,
): Record<string, unknown> {
  const report: DeliveryReport = {
    url,
    state: DeliveryState.Retrying,
    attempts: previousAttempts,
    nextAttemptAt: nextAttemptAt === undefined ? undefined : new Date(nextAttemptAt).toISOString(),
  };
  return { [DELIVERY_MEMO_KEY]: report };
}

/** An attempt whose activity failed outright (not an HTTP failure): recorded, and the schedule goes on. */
function attemptThatCouldNotRun(err: unknown): DeliveryAttemptResult {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause?.message ?? err.message;
  return { delivered: false, error: `the attempt could not run: ${cause}`, latencyMs: 0 };
}

function jittered(ms: number): number {
  // Math.random is deterministic inside a workflow (seeded per execution), so replays agree.
  return Math.round(ms * (1 - JITTER + Math.random() * 2 * JITTER));
}
