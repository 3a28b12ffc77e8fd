/**
 * The webhook delivery workflow's contract with the world: its input, its log (kept in the memo), its query and
 * signal, and its workflow id. Imported by the API, the worker and the workflows; no Node imports.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { WebhookBody } from '../shared/request';

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
   * The log so far: of earlier runs under this workflow id (a redelivery after the delivery had closed, or the run
   * before a continue-as-new), or of the first attempt, which the request workflow made itself.
   */
  previousAttempts?: DeliveryAttempt[];
  /** Attempts made before those in {@link previousAttempts}, which the log no longer lists. */
  earlierAttempts?: number;
  /** When the first scheduled attempt of this run is due (epoch ms); default: `scheduleMs[0]` after the start. */
  firstAttemptAt?: number;
  /** When the request's result existed (epoch ms), which delivery latency counts from; default: this run's start. */
  resultAt?: number;
  /**
   * History length at which a run continues as new, carrying the log (its last {@link MAX_LOGGED_ATTEMPTS} attempts).
   * @default 2000
   */
  continueAsNewAfterEvents?: number;
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
  /** The latest attempts, oldest first (at most {@link MAX_LOGGED_ATTEMPTS}). */
  attempts: DeliveryAttempt[];
  /** Attempts made before the first one listed; absent = none. */
  earlierAttempts?: number;
  nextAttemptAt?: string;
}

/**
 * What a request workflow's memo holds under {@link DELIVERY_MEMO_KEY}: the log itself when its first attempt settled
 * the delivery, or (since the delivery module) only where the log is, once a delivery workflow took it over.
 */
export type RequestDeliveryMemo = DeliveryReport | { deliveryWorkflowId: string };

/** Memo key under which a delivery workflow (and a request, see {@link RequestDeliveryMemo}) publishes the log. */
export const DELIVERY_MEMO_KEY = 'delivery';

/** Attempts a log lists; older ones are only counted ({@link DeliveryReport.earlierAttempts}). */
export const MAX_LOGGED_ATTEMPTS = 100;

export const deliveryReportQuery = defineQuery<DeliveryReport>('deliveryReport');

/** Sends the webhook once more, now; on a delivery still retrying, the schedule goes on if it fails. */
export const redeliverSignal = defineSignal('redeliver');

/** The workflow's type name (what `startChild` and `describe` name), so callers need not import workflow code. */
export const WEBHOOK_DELIVERY_WORKFLOW_TYPE = 'webhookDelivery';

/** Workflow id of a request's webhook delivery; every run (first delivery, redeliveries) shares it. */
export function webhookWorkflowId(requestId: string): string {
  return `${requestId}/webhook`;
}

/** The log trimmed to its last {@link MAX_LOGGED_ATTEMPTS} attempts, the older ones counted. */
export function trimmedLog(
  attempts: DeliveryAttempt[],
  earlierAttempts = 0,
): { attempts: DeliveryAttempt[]; earlierAttempts?: number } {
  const dropped = Math.max(0, attempts.length - MAX_LOGGED_ATTEMPTS);
  const earlier = earlierAttempts + dropped;
  return { attempts: attempts.slice(dropped), ...(earlier > 0 && { earlierAttempts: earlier }) };
}

/** The memo a delivery run starts with, so the log is readable before its first attempt. */
export function initialDeliveryMemo(
  url: string,
  previous: { attempts?: DeliveryAttempt[]; earlierAttempts?: number } = {},
  nextAttemptAt?: number,
): Record<string, unknown> {
  const report: DeliveryReport = {
    url,
    state: DeliveryState.Retrying,
    ...trimmedLog(previous.attempts ?? [], previous.earlierAttempts),
    nextAttemptAt: nextAttemptAt === undefined ? undefined : new Date(nextAttemptAt).toISOString(),
  };
  return { [DELIVERY_MEMO_KEY]: report };
}
