/**
 * The one error vocabulary: the failure types that cross the workflow/activity boundary, fal's `error_type` codes
 * that clients see, and the one table that maps the first to the second. Loaded by the workflow bundle: no Node
 * imports. Match failures on `failure.type`, never on `instanceof` or an error's `name`.
 */

/** `ApplicationFailure.type` of a failed inference, set by the `runInference` activity. */
export const ErrorType = {
  /** The model rejected its input (fal's 422). Not retryable. */
  InputValidation: 'InputValidation',
  /** The model has no usable backend configured. Not retryable. */
  NotConfigured: 'BackendNotConfigured',
  /** The backend failed in a way worth retrying (5xx, connection error). */
  BackendUnavailable: 'BackendUnavailable',
  /** The backend failed in a way that retrying will not fix (4xx other than 422, bad output). */
  BackendRejected: 'BackendRejected',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** fal's `error_type`: the short code in status and result bodies (and the `FalErrorType` search attribute). */
export const RequestErrorType = {
  Validation: 'validation_error',
  RunnerError: 'runner_error',
  NotConfigured: 'backend_not_configured',
  Cancelled: 'cancelled',
  Timeout: 'request_timeout',
} as const;
export type RequestErrorType = (typeof RequestErrorType)[keyof typeof RequestErrorType];

/** Failure types the inference activity never retries. */
export const NON_RETRYABLE_ERROR_TYPES: readonly ErrorType[] = [
  ErrorType.InputValidation,
  ErrorType.NotConfigured,
  ErrorType.BackendRejected,
];

/** How a failed run reaches the client: fal's `error_type` and the HTTP status of its result. */
export interface FalError {
  errorType: RequestErrorType;
  httpStatus: number;
}

/** The mapping table: every failure type, and any other failure (`undefined`), to what fal reports. */
const FAL_ERRORS: Record<ErrorType, FalError> = {
  [ErrorType.InputValidation]: { errorType: RequestErrorType.Validation, httpStatus: 422 },
  [ErrorType.NotConfigured]: { errorType: RequestErrorType.NotConfigured, httpStatus: 500 },
  [ErrorType.BackendUnavailable]: { errorType: RequestErrorType.RunnerError, httpStatus: 500 },
  [ErrorType.BackendRejected]: { errorType: RequestErrorType.RunnerError, httpStatus: 500 },
};
const UNKNOWN_FAILURE: FalError = { errorType: RequestErrorType.RunnerError, httpStatus: 500 };

/** What fal reports for a failure of this `type` (an unknown or missing type is a runner error). */
export function falErrorOf(type: string | undefined): FalError {
  return (FAL_ERRORS as Record<string, FalError | undefined>)[type ?? ''] ?? UNKNOWN_FAILURE;
}
