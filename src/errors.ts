import type { ValidationDetail } from './domain/request';

/**
 * Failure types that cross the workflow/activity boundary as `ApplicationFailure.type`.
 * Match on these strings, never on `instanceof`.
 */
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

/** Thrown by model runners when the input is invalid; becomes the seed's 422 ERROR. */
export class InputValidationError extends Error {
  constructor(
    readonly detail: ValidationDetail[],
    message = 'Invalid input',
  ) {
    super(message);
    this.name = 'InputValidationError';
  }
}

/** Thrown by model runners whose backend is missing or misconfigured. */
export class BackendNotConfiguredError extends Error {
  override name = 'BackendNotConfiguredError';
}

/** Thrown by model runners for backend failures; `retryable` decides whether Temporal tries again. */
export class BackendError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'BackendError';
  }
}
