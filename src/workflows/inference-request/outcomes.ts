/**
 * The outcomes a request ends with: a run's result, and when it does not run to the end, from the one table of
 * failure types to fal's `error_type` (`../shared/errors`). Workflow code; the API uses them too, for a cancelled
 * workflow and for an outcome it reads from a history (`RequestReader`).
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { InferenceFailureDetails, InferenceResult } from '../../activities';
import { ErrorType, RequestErrorType, falErrorOf } from '../shared/errors';
import { RequestTimeoutType, type LogEntry, type RequestOutcome, type ValidationDetail } from '../shared/request';

/** The outcome of a run that returned. */
export function succeededOutcome(result: InferenceResult): RequestOutcome {
  return { status: 'OK', output: result.output, logs: result.logs, metrics: { inference_time: result.inferenceTime } };
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
export function failedOutcome(err: unknown, startTimeoutSeconds: number | undefined): RequestOutcome {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause;
  const metrics = { inference_time: null };
  if (cause instanceof TimeoutFailure && cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
    return startTimeoutOutcome(startTimeoutSeconds ?? 0);
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
  const { errorType, httpStatus } = falErrorOf(failure?.type ?? undefined);
  // Validation failures carry pydantic's entries, which fal's clients parse; every other failure, its message.
  const detail =
    failure?.type === ErrorType.InputValidation ? ((details?.detail as ValidationDetail[] | undefined) ?? []) : message;
  return { status: 'ERROR', httpStatus, errorType, message, detail, logs, metrics };
}
