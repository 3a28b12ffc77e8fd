import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  TimeoutFailure,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  startChild,
} from '@temporalio/workflow';
import type { Activities, InferenceFailureDetails } from '../activities';
import { ErrorType } from '../errors';
import {
  QueueStatus,
  RequestErrorType,
  webhookBodyFor,
  type LogEntry,
  type RequestOutcome,
  type ValidationDetail,
} from '../domain/request';
import { webhookDelivery } from './webhook-delivery';

export interface InferenceRequestInput {
  requestId: string;
  /** Owner of the API key that submitted it; only they may see it. */
  owner: string;
  /** Full model id, `owner/app[/path]`. */
  modelId: string;
  input: unknown;
  webhookUrl?: string;
  /** How to run the model, copied from the registry at submit so a running request never changes course. */
  model: {
    taskQueue: string;
    timeoutSeconds: number;
    heartbeatTimeoutSeconds: number;
    maxAttempts: number;
  };
  webhook: { scheduleMs: number[]; attemptTimeoutMs: number };
}

/** Where the workflow itself is; the API asks only when the pending activity cannot tell it. */
export interface RequestProgress {
  status: QueueStatus;
  outcome?: RequestOutcome;
}

export const progressQuery = defineQuery<RequestProgress>('progress');

/** Workflow id of a request's webhook delivery, a child that outlives the request. */
export function webhookWorkflowId(requestId: string): string {
  return `${requestId}/webhook`;
}

/**
 * One inference request: run the model on its own task queue, then hand the webhook (if any) to a
 * child workflow that outlives this one, so the result is available as soon as inference ends.
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
  });

  let outcome: RequestOutcome;
  let cancellation: unknown;
  try {
    const result = await runInference({ requestId: req.requestId, modelId: req.modelId, input: req.input });
    outcome = {
      status: 'OK',
      output: result.output,
      logs: result.logs,
      metrics: { inference_time: result.inferenceTime },
    };
  } catch (err) {
    if (isCancellation(err)) {
      cancellation = err;
      outcome = cancelledOutcome();
    } else {
      outcome = failedOutcome(err);
    }
  }
  progress.status = QueueStatus.Completed;
  progress.outcome = outcome;

  if (req.webhookUrl) {
    const body = webhookBodyFor(req.requestId, outcome);
    await CancellationScope.nonCancellable(() =>
      startChild(webhookDelivery, {
        workflowId: webhookWorkflowId(req.requestId),
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [{ requestId: req.requestId, url: req.webhookUrl!, body, ...req.webhook }],
      }),
    );
  }
  // Ending as Cancelled (not Completed) lets operators see it for what it is in the Temporal UI.
  if (cancellation) throw cancellation;
  return outcome;
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
function failedOutcome(err: unknown): RequestOutcome {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause;
  const metrics = { inference_time: null };
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
