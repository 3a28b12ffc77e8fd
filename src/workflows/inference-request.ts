import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  condition,
  defineQuery,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { Activities, InferenceFailureDetails } from '../activities';
import { ErrorType } from '../errors';
import {
  QueueStatus,
  RequestErrorType,
  RequestTimeoutType,
  webhookBodyFor,
  type LogEntry,
  type RequestOutcome,
  type ValidationDetail,
} from '../domain/request';
import { admittedSignal } from './admission-queue';
import { DEFAULT_MAX_PAYLOAD_BYTES, fitWebhookBody } from '../webhooks/payload';
import { FalStateValue, upsertRequestState } from '../observability/search-attributes';
import { deliverFromRequest } from './webhook-delivery';

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
  /** `x-fal-request-timeout`: seconds after submit the request may still start; once started it is not cut. */
  startTimeoutSeconds?: number;
}

/** Where the workflow itself is; the API asks only when the pending activity cannot tell it. */
export interface RequestProgress {
  status: QueueStatus;
  outcome?: RequestOutcome;
}

export const progressQuery = defineQuery<RequestProgress>('progress');

/**
 * One inference request: run the model on its own task queue, then make the webhook's first attempt (if any); a
 * delivery that needs retries goes on in a child workflow that outlives this one. The result is readable as soon as
 * inference ends (the progress query answers while the webhook is sent).
 */
export async function inferenceRequest(req: InferenceRequestInput): Promise<RequestOutcome> {
  const progress: RequestProgress = { status: QueueStatus.InQueue };
  setHandler(progressQuery, () => progress);

  const { runInference } = proxyActivities<Activities>({
    taskQueue: req.model.taskQueue,
    startToCloseTimeout: `${req.model.timeoutSeconds}s`,
    heartbeatTimeout: `${req.model.heartbeatTimeoutSeconds}s`,
    retry: {
      maximumAttempts: req.model.maxAttempts,
      initialInterval: '1s',
      nonRetryableErrorTypes: [ErrorType.InputValidation, ErrorType.NotConfigured, ErrorType.BackendRejected],
    },
    // The workflow moves on at once; the runner still learns of it through its next heartbeat.
    cancellationType: ActivityCancellationType.TRY_CANCEL,
    // Without an admission queue, "started" means a runner picked the run up.
    ...(!req.admission && req.startTimeoutSeconds !== undefined && { scheduleToStartTimeout: startDeadlineMs(req) }),
  });
  // Set when the runner gave the slot back itself (see RunInferenceInput.admissionQueueWorkflowId).
  let slotReleased = false;
  const infer = async (): Promise<RequestOutcome> => {
    // A request admitted at submit was started as DISPATCHED already (upsertRequestState skips an unchanged value).
    upsertRequestState(FalStateValue.Dispatched);
    const result = await runInference({
      requestId: req.requestId,
      modelId: req.modelId,
      input: req.input,
      fileExpiresInSeconds: req.fileExpiresInSeconds,
      admissionQueueWorkflowId: req.admission?.queueWorkflowId,
    });
    slotReleased = result.slotReleased === true;
    return {
      status: 'OK',
      output: result.output,
      logs: result.logs,
      metrics: { inference_time: result.inferenceTime },
    };
  };

  let admitted = req.admission?.admitted ?? true;
  setHandler(admittedSignal, () => void (admitted = true));

  let outcome: RequestOutcome;
  let cancellation: unknown;
  try {
    outcome = (await waitForSlot(req, () => admitted)) ?? (await infer());
  } catch (err) {
    if (isCancellation(err)) {
      cancellation = err;
      outcome = cancelledOutcome();
    } else {
      outcome = failedOutcome(err, req);
    }
  }
  progress.status = QueueStatus.Completed;
  progress.outcome = outcome;
  upsertRequestState(FalStateValue.Completed, outcome.status === 'ERROR' ? outcome.errorType : undefined);

  // The slot (or the place in the queue) goes back at once, alongside the webhook hand-off. Awaited before the
  // workflow ends: Temporal drops signals of a workflow that has closed.
  const released =
    req.admission && !slotReleased
      ? CancellationScope.nonCancellable(() => releaseSlot(req.admission!.queueWorkflowId, req.requestId))
      : undefined;
  if (req.webhookUrl) {
    const { scheduleMs, attemptTimeoutMs, maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES } = req.webhook;
    // Fitted here, so no history (this one's, or a delivery workflow's input) holds more than the payload limit.
    const body = fitWebhookBody(webhookBodyFor(req.requestId, outcome), maxPayloadBytes);
    const delivery = {
      requestId: req.requestId,
      owner: req.owner,
      url: req.webhookUrl,
      body,
      scheduleMs,
      attemptTimeoutMs,
    };
    await CancellationScope.nonCancellable(() => deliverFromRequest(delivery));
  }
  await released;
  // Ending as Cancelled (not Completed) lets operators see it for what it is in the Temporal UI.
  if (cancellation) throw cancellation;
  return outcome;
}

/**
 * Waits until the model's admission queue gives the request a slot. With a start timeout it gives up when that
 * has passed since submit and returns the timeout outcome; undefined means the request may run.
 */
async function waitForSlot(req: InferenceRequestInput, admitted: () => boolean): Promise<RequestOutcome | undefined> {
  if (admitted()) return undefined;
  if (req.startTimeoutSeconds === undefined) {
    await condition(admitted);
    return undefined;
  }
  const inTime = await condition(admitted, startDeadlineMs(req));
  return inTime ? undefined : startTimeoutOutcome(req.startTimeoutSeconds);
}

/** Milliseconds left of the start timeout, counted from submit (the workflow's start). */
function startDeadlineMs(req: InferenceRequestInput): number {
  const deadline = workflowInfo().startTime.getTime() + (req.startTimeoutSeconds ?? 0) * 1000;
  return Math.max(1, deadline - Date.now());
}

/**
 * Gives the slot back through a local activity, within the workflow task that ends the request: a signal sent from
 * workflow code would cost this workflow two more events and one more workflow task, and the queue one signal per
 * request (the activity batches the releases of requests finishing together).
 */
async function releaseSlot(queueWorkflowId: string, requestId: string): Promise<void> {
  const { releaseSlot: release } = proxyLocalActivities<Activities>({
    startToCloseTimeout: '30s',
    scheduleToCloseTimeout: '10m',
    retry: { initialInterval: '200ms', maximumInterval: '10s' },
  });
  try {
    await release({ queueWorkflowId, requestId });
  } catch (err) {
    // The queue checks its slot holders, and frees this slot once this workflow has closed.
    log.warn('could not give the slot back to the admission queue', { queueWorkflowId, error: String(err) });
  }
}

/** The outcome of a request that did not start within its `x-fal-request-timeout`. */
export function startTimeoutOutcome(seconds: number): RequestOutcome {
  const message = `Request was not started within ${seconds} s (x-fal-request-timeout)`;
  return {
    status: 'ERROR',
    httpStatus: 504,
    errorType: RequestErrorType.Timeout,
    timeoutType: RequestTimeoutType.User,
    message,
    detail: message,
    logs: [],
    metrics: { inference_time: null },
  };
}

/** The outcome of a request cancelled before it finished. */
export function cancelledOutcome(): RequestOutcome {
  return {
    status: 'ERROR',
    httpStatus: 400,
    errorType: RequestErrorType.Cancelled,
    message: 'Request was cancelled',
    detail: 'Request was cancelled',
    logs: [],
    metrics: { inference_time: null },
  };
}

/** Turns a failed inference into the outcome clients see; anything unexpected fails the workflow task loudly. */
function failedOutcome(err: unknown, req: InferenceRequestInput): RequestOutcome {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause;
  const metrics = { inference_time: null };
  if (cause instanceof TimeoutFailure && cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
    return startTimeoutOutcome(req.startTimeoutSeconds ?? 0);
  }
  if (cause instanceof TimeoutFailure) {
    const message = `Runner timed out (${cause.timeoutType === undefined ? 'timeout' : String(cause.timeoutType)})`;
    return {
      status: 'ERROR',
      httpStatus: 504,
      errorType: RequestErrorType.Timeout,
      message,
      detail: message,
      logs: [],
      metrics,
    };
  }
  const failure = cause instanceof ApplicationFailure ? cause : undefined;
  const details = failure?.details?.[0] as InferenceFailureDetails | undefined;
  const logs: LogEntry[] = details?.logs ?? [];
  const message = failure?.message ?? err.message;
  switch (failure?.type) {
    case ErrorType.InputValidation:
      return {
        status: 'ERROR',
        httpStatus: 422,
        errorType: RequestErrorType.Validation,
        message,
        detail: (details?.detail as ValidationDetail[] | undefined) ?? [],
        logs,
        metrics,
      };
    case ErrorType.NotConfigured:
      return {
        status: 'ERROR',
        httpStatus: 500,
        errorType: RequestErrorType.NotConfigured,
        message,
        detail: message,
        logs,
        metrics,
      };
    default:
      return {
        status: 'ERROR',
        httpStatus: 500,
        errorType: RequestErrorType.RunnerError,
        message,
        detail: message,
        logs,
        metrics,
      };
  }
}
