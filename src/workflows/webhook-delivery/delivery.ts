/**
 * The one webhook delivery path, shared by the request workflow (its first attempt) and the delivery workflow (the
 * schedule, redeliveries): building the delivery input from a request and its outcome, making and recording one
 * attempt, and reporting the end. Workflow code: runs in the sandbox, no Node imports.
 */
import {
  ActivityFailure,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  startChild,
  upsertMemo,
} from '@temporalio/workflow';
import type { Activities, DeliveryAttemptResult } from '../../activities';
import type { InferenceRequestInput } from '../inference-request/messages';
import { webhookBodyFor, type RequestOutcome, type WebhookBody } from '../shared/request';
import { Patch } from '../shared/patches';
import { queueMetrics } from '../shared/sinks';
import {
  AttemptTrigger,
  DELIVERY_MEMO_KEY,
  WEBHOOK_DELIVERY_WORKFLOW_TYPE,
  DeliveryState,
  initialDeliveryMemo,
  trimmedLog,
  webhookWorkflowId,
  type DeliveryAttempt,
  type DeliveryReport,
  type RequestDeliveryMemo,
  type WebhookDeliveryInput,
} from './messages';
import { DEFAULT_MAX_PAYLOAD_BYTES, INLINE_BODY_MAX_BYTES, fitWebhookBody, utf8Length } from './payload';

// Spreads retries of many receivers that failed together, so they do not all return at once.
const JITTER = 0.1;
// A receiver's Retry-After can postpone an attempt, but not indefinitely.
const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * The delivery a request's outcome calls for, or undefined when the request has no webhook. The body is fitted to
 * the payload limit here, so no history (the request's, or a delivery's input) holds more. The redelivery API builds
 * the input of a request whose delivery never had a workflow with this same function.
 */
export function deliveryInputFor(
  req: InferenceRequestInput,
  outcome: RequestOutcome,
): WebhookDeliveryInput | undefined {
  if (!req.webhookUrl) return undefined;
  const { scheduleMs, attemptTimeoutMs, maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES } = req.webhook;
  return {
    requestId: req.requestId,
    owner: req.owner,
    url: req.webhookUrl,
    body: fitWebhookBody(webhookBodyFor(req.requestId, outcome), maxPayloadBytes),
    scheduleMs,
    attemptTimeoutMs,
  };
}

/** What to do after an attempt that failed: the delay of the next scheduled one, or keep what was due. */
export type AfterFailure = { nextDelayMs: number | undefined } | { keepDueAt: number | undefined };

/** How {@link recordAttempt} reports the log, and how it runs the attempt. */
export interface AttemptOptions {
  /** False: the caller reports the log another way (in its result, or as a pointer to a delivery workflow). */
  publish?: boolean;
  /** A local activity, within the current workflow task (see InferenceRequestInput.firstWebhookAttemptLocal). */
  local?: boolean;
}

/**
 * Makes one attempt (an activity) and records it: its entry in the log, the log's state (a 2xx delivers, a 410 ends,
 * a failure with nothing due exhausts), when the next attempt is due, and (unless `publish` is false) the log in the
 * memo.
 * @returns when the next scheduled attempt is due; undefined = none.
 */
export async function recordAttempt(
  input: WebhookDeliveryInput,
  report: DeliveryReport,
  trigger: AttemptTrigger,
  afterFailure: AfterFailure,
  { publish = true, local = false }: AttemptOptions = {},
): Promise<number | undefined> {
  const options = {
    startToCloseTimeout: input.attemptTimeoutMs + 10_000,
    // These retries only cover a worker that died mid-attempt; HTTP failures are returned, not thrown.
    retry: { initialInterval: '1s', maximumInterval: '1m', backoffCoefficient: 2, maximumAttempts: 10 },
  };
  const at = new Date();
  const number = (report.earlierAttempts ?? 0) + report.attempts.length + 1;
  const attempt = {
    requestId: input.requestId,
    owner: input.owner,
    url: input.url,
    attempt: number,
    timeoutMs: input.attemptTimeoutMs,
    body: inlineBodyOf(input.body),
  };
  let result = local
    ? await proxyLocalActivities<Activities>(options).deliverWebhook(attempt).catch(attemptThatCouldNotRun)
    : undefined;
  // Deferred by the worker (it sent nothing): a slow receiver must not hold this workflow task (LocalAttemptGate).
  if (result === undefined || result.deferred) {
    result = await proxyActivities<Activities>(options).deliverWebhook(attempt).catch(attemptThatCouldNotRun);
  }
  const entry: DeliveryAttempt = {
    attempt: number,
    at: at.toISOString(),
    trigger,
    statusCode: result.statusCode,
    error: result.error,
    latencyMs: result.latencyMs,
  };
  report.attempts.push(entry);
  Object.assign(report, trimmedLog(report.attempts, report.earlierAttempts));

  let dueAt: number | undefined;
  if (result.delivered) report.state = DeliveryState.Delivered;
  else if (result.statusCode === 410) report.state = DeliveryState.Gone;
  else if ('nextDelayMs' in afterFailure) dueAt = nextDue(afterFailure.nextDelayMs, result);
  else dueAt = afterFailure.keepDueAt;
  if (report.state === DeliveryState.Retrying && dueAt === undefined) report.state = DeliveryState.Exhausted;

  entry.nextAttemptAt = dueAt === undefined ? undefined : new Date(dueAt).toISOString();
  report.nextAttemptAt = entry.nextAttemptAt;
  if (publish) upsertMemo({ [DELIVERY_MEMO_KEY]: report });
  return dueAt;
}

/** Reports a delivery that ended (no attempt is due any more); latency counts from when the result existed. */
export function reportDeliveryEnded(report: DeliveryReport, resultAt: number): void {
  queueMetrics.webhookDeliveryEnded(report.state, Date.now() - resultAt);
}

/**
 * A request's webhook, from the request workflow itself: the first attempt right there (one activity, local for
 * requests of today's API; no second workflow, so the receiver hears of the result within milliseconds), and only if that fails, a delivery workflow
 * that outlives the request for the rest of the schedule. The request's memo then points to that workflow's log.
 * A first attempt that is not due at once, or a body too large to pass to an activity, goes to the workflow directly.
 * `logInResult`: the caller returns the log of a delivery settled here in its result, so the memo is not written.
 * @returns the log of a delivery the first attempt settled; undefined = no webhook, or handed over.
 */
export async function deliverFromRequest(
  req: InferenceRequestInput,
  outcome: RequestOutcome,
  { logInResult = false }: { logInResult?: boolean } = {},
): Promise<DeliveryReport | undefined> {
  const input = deliveryInputFor(req, outcome);
  if (!input) return undefined;
  const resultAt = Date.now();
  let carryOn: WebhookDeliveryInput = { ...input, resultAt };
  if (input.scheduleMs[0] === 0 && inlineBodyOf(input.body) !== undefined) {
    const report: DeliveryReport = { url: input.url, state: DeliveryState.Retrying, attempts: [] };
    const dueAt = await recordAttempt(
      input,
      report,
      AttemptTrigger.Schedule,
      { nextDelayMs: input.scheduleMs[1] },
      // Handed over, the request's memo gets the pointer below instead; settled, the caller's result has the log.
      { publish: !logInResult, local: req.firstWebhookAttemptLocal === true },
    );
    if (dueAt === undefined) {
      reportDeliveryEnded(report, resultAt);
      return report;
    }
    carryOn = {
      ...input,
      scheduleMs: input.scheduleMs.slice(1),
      firstAttemptAt: dueAt,
      previousAttempts: report.attempts,
      resultAt,
    };
  }
  const workflowId = webhookWorkflowId(req.requestId);
  await startChild(WEBHOOK_DELIVERY_WORKFLOW_TYPE, {
    workflowId,
    parentClosePolicy: ParentClosePolicy.ABANDON,
    args: [carryOn],
    memo: initialDeliveryMemo(input.url, { attempts: carryOn.previousAttempts }, carryOn.firstAttemptAt),
  });
  // The log lives on in the delivery workflow: the request's memo points there instead of keeping a stale copy.
  // Requests that handed over before this existed keep their copy (`patched`: their histories have no such command).
  if (carryOn.previousAttempts && patched(Patch.RequestMemoPointsToDelivery)) {
    const pointer: RequestDeliveryMemo = { deliveryWorkflowId: workflowId };
    upsertMemo({ [DELIVERY_MEMO_KEY]: pointer });
  }
  return undefined;
}

/**
 * A large body stays out of each attempt's history events; the attempt reads it from the delivery run's input
 * (so an attempt made from the request workflow, whose input is the model's, needs the body inline).
 */
function inlineBodyOf(body: WebhookBody): WebhookBody | undefined {
  return utf8Length(JSON.stringify(body)) <= INLINE_BODY_MAX_BYTES ? body : undefined;
}

/** When the next scheduled attempt is due after a failed one: its delay, or later if the receiver asked for it. */
function nextDue(delayMs: number | undefined, failed: DeliveryAttemptResult): number | undefined {
  if (delayMs === undefined) return undefined;
  const retryAfter = Math.min(failed.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
  return Date.now() + Math.max(jittered(delayMs), retryAfter);
}

/** Delay with jitter; used for a run's first scheduled attempt too. */
export function jittered(ms: number): number {
  // Math.random is deterministic inside a workflow (seeded per execution), so replays agree.
  return Math.round(ms * (1 - JITTER + Math.random() * 2 * JITTER));
}

/** An attempt whose activity failed outright (not an HTTP failure): recorded, and the schedule goes on. */
function attemptThatCouldNotRun(err: unknown): DeliveryAttemptResult {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause?.message ?? err.message;
  return { delivered: false, error: `the attempt could not run: ${cause}`, latencyMs: 0 };
}
