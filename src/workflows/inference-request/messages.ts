/**
 * The inference request workflow's contract: its input, the query the API asks and the signal the admission queue
 * sends. Imported by the API, the activities and the workflows; no Node imports.
 */
import type { Priority } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { QueueStatus, RequestOutcome } from '../shared/request';
import type { DeliveryReport } from '../webhook-delivery/messages';

export interface InferenceRequestInput {
  requestId: string;
  /** Owner of the API key that submitted it; only they may see it. */
  owner: string;
  /** Full model id, `owner/app[/path]`. */
  modelId: string;
  input: unknown;
  webhookUrl?: string;
  /** Lifetime of the files the run stores; undefined = the file store's default. */
  fileExpiresInSeconds?: number;
  /** How to run the model, copied from the registry at submit so a running request never changes course. */
  model: {
    taskQueue: string;
    timeoutSeconds: number;
    heartbeatTimeoutSeconds: number;
    maxAttempts: number;
  };
  webhook: { scheduleMs: number[]; attemptTimeoutMs: number; maxPayloadBytes?: number };
  /**
   * The model's admission queue, when the model has a concurrency limit: whether the request got a slot at submit,
   * or waits for the queue's {@link admittedSignal}. Absent = no limit; the run is scheduled at once.
   */
  admission?: { queueWorkflowId: string; admitted: boolean };
  /**
   * The request waits in its model's task queue (models without an admission workflow): its run is scheduled at once
   * with this priority (`x-fal-queue-priority`, the owner as fairness key and the owner's weight), and the runner
   * reports the start with {@link runStartedSignal}. Absent (requests of the admission workflow, or submitted by an
   * older API) = scheduled without priority, and FalState is DISPATCHED as soon as the run is scheduled.
   */
  queueing?: { priority: Priority };
  /** `x-fal-request-timeout`: seconds after submit the request may still start; once started it is not cut. */
  startTimeoutSeconds?: number;
  /**
   * A webhook delivery that the request's own attempt settles is logged in the workflow's result
   * ({@link RequestResult.webhookDelivery}) rather than in its memo, which would cost every request one more history
   * event and one more visibility write. Absent (requests of an older API, and the recorded histories, which must
   * replay unchanged) = the memo, as before. A cancelled request has no result and still uses the memo.
   */
  deliveryLogInResult?: boolean;
  /**
   * FalState moves to COMPLETED (and FalErrorType is set) in the workflow task that closes the request, after the
   * webhook's first attempt, rather than in the one that records the outcome. Temporal skips the visibility write of
   * an upsert whose workflow has closed by the time it gets to it, so the close record carries COMPLETED and every
   * request with a webhook saves one visibility write, the dearest of its server work (docs/performance.md). What it
   * costs: while that first attempt is under way, visibility still shows the state before the outcome. Absent
   * (requests of an older API, and the recorded histories, which must replay unchanged) = at the outcome, as before.
   */
  completedStateAtClose?: boolean;
  /**
   * The webhook's first attempt runs as a local activity, inside the workflow task that records the outcome, and the
   * request closes in that same task: no activity task to schedule, dispatch and record, and no workflow task after
   * it. That is 5 history events, 3 database updates and a round trip through the server less per request, and the
   * receiver hears of the result that much sooner (docs/performance.md). What it costs: while the attempt is under
   * way the workflow task stays open, so a query waits for it; the API reads a finished request's outcome from its
   * history instead (`RequestReader`). Retries still run as activities in the delivery workflow. Absent (requests of
   * an older API, and the recorded histories, which must replay unchanged) = an activity, as before.
   */
  firstWebhookAttemptLocal?: boolean;
}

/** What the `inferenceRequest` workflow returns: how the request ended, and its settled webhook delivery's log. */
export type RequestResult = RequestOutcome & { webhookDelivery?: DeliveryReport };

/** The outcome alone, without the log the workflow's result may carry beside it. */
export function outcomeOf(result: RequestResult): RequestOutcome {
  if (!('webhookDelivery' in result)) return result;
  const { webhookDelivery: _log, ...outcome } = result;
  return outcome;
}

/** Where the workflow itself is; the API asks only when the pending activity cannot tell it. */
export interface RequestProgress {
  status: QueueStatus;
  outcome?: RequestOutcome;
}

/** The workflow's type name, so the API can recognise a request's workflow without importing workflow code. */
export const INFERENCE_REQUEST_WORKFLOW_TYPE = 'inferenceRequest';

export const progressQuery = defineQuery<RequestProgress>('progress');

/**
 * Sent by the runner when it starts the run of a request that waited in the task queue ({@link
 * InferenceRequestInput.queueing}): FalState moves from IN_QUEUE to DISPATCHED, so the requests counted as waiting
 * (positions, `fal_max_queue_length`) are those no runner has taken yet. Repeated sends are harmless.
 */
export const runStartedSignal = defineSignal('runStarted');

/**
 * How long a run goes before its runner sends {@link runStartedSignal}. A run that ends sooner is never reported: its
 * request's close moves FalState on anyway, and the signal would have cost its workflow a signal, a workflow task and
 * a visibility write for a state nobody could have seen (a request's own status reads IN_PROGRESS from the started
 * activity, not from FalState). What it costs: a started run counts as waiting, in the positions of those behind it,
 * for this long, and a run that ended sooner until its request closes
 * ({@link InferenceRequestInput.completedStateAtClose}).
 */
export const RUN_START_REPORT_AFTER_MS = 200;

/** Sent by the admission queue to a request workflow: it holds a slot now and may start. Repeated sends are harmless. */
export const admittedSignal = defineSignal('admitted');
