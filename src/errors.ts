import { ErrorType } from './workflows/shared/errors';
import type { ValidationDetail } from './workflows/shared/request';

/**
 * What model runners throw. Each error names the failure type it becomes when it crosses into the workflow
 * (`failureType`, from the one table in `src/workflows/shared/errors.ts`), so the activity maps a typed field, never
 * an error's `name`.
 */
export abstract class RunnerError extends Error {
  abstract readonly failureType: ErrorType;
  /** Whether Temporal may try the run again. */
  abstract readonly retryable: boolean;
  /** Carried to the workflow in the failure's details (validation entries). */
  readonly detail?: unknown;
}

/** Thrown by model runners when the input is invalid; becomes the seed's 422 ERROR. */
export class InputValidationError extends RunnerError {
  override name = 'InputValidationError';
  readonly failureType = ErrorType.InputValidation;
  readonly retryable = false;
  constructor(
    override readonly detail: ValidationDetail[],
    message = 'Invalid input',
  ) {
    super(message);
  }
}

/** Thrown by model runners whose backend is missing or misconfigured. */
export class BackendNotConfiguredError extends RunnerError {
  override name = 'BackendNotConfiguredError';
  readonly failureType = ErrorType.NotConfigured;
  readonly retryable = false;
}

/** Thrown by model runners for backend failures; `retryable` decides whether Temporal tries again. */
export class BackendError extends RunnerError {
  override name = 'BackendError';
  readonly failureType: ErrorType;
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.failureType = retryable ? ErrorType.BackendUnavailable : ErrorType.BackendRejected;
  }
}

/** A runner's error as a {@link RunnerError}, when it is one (by its typed fields: classes may come from two realms). */
export function asRunnerError(err: unknown): RunnerError | undefined {
  if (!(err instanceof Error)) return undefined;
  const fields = err as Error & Partial<Pick<RunnerError, 'failureType' | 'retryable'>>;
  return typeof fields.failureType === 'string' && typeof fields.retryable === 'boolean'
    ? (err as RunnerError)
    : undefined;
}
