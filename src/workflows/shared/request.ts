/**
 * The shapes a request takes on its way through the queue. This module is loaded by the workflow
 * bundle too, so it must stay free of Node imports.
 */
import type { RequestErrorType } from './errors';

/** fal's queue states, as the status endpoint reports them. */
export const QueueStatus = {
  InQueue: 'IN_QUEUE',
  InProgress: 'IN_PROGRESS',
  Completed: 'COMPLETED',
} as const;
export type QueueStatus = (typeof QueueStatus)[keyof typeof QueueStatus];

export const LogLevel = {
  Stderr: 'STDERR',
  Stdout: 'STDOUT',
  Error: 'ERROR',
  Info: 'INFO',
  Warn: 'WARN',
  Debug: 'DEBUG',
} as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** One log line in fal's shape. */
export interface LogEntry {
  message: string;
  level: LogLevel;
  source: 'USER';
  timestamp: string;
}

/** One entry of a FastAPI/pydantic-v1 validation error, the shape fal's clients parse. */
export interface ValidationDetail {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** Which timeout ended a request, as fal's `X-Fal-Request-Timeout-Type` result header names it. */
export const RequestTimeoutType = {
  /** The client's own `x-fal-request-timeout`: the request did not start in time. */
  User: 'user',
} as const;
export type RequestTimeoutType = (typeof RequestTimeoutType)[keyof typeof RequestTimeoutType];

export interface RequestMetrics {
  /** Seconds the runner itself spent, or null when it never ran to the end. */
  inference_time: number | null;
}

/** How a request ended; the return value of the `inferenceRequest` workflow. */
export type RequestOutcome =
  | { status: 'OK'; output: unknown; logs: LogEntry[]; metrics: RequestMetrics }
  | {
      status: 'ERROR';
      /** HTTP status the result endpoint answers with, and the one named in the webhook's `error`. */
      httpStatus: number;
      errorType: RequestErrorType;
      /** Human readable message (`error` in the status body). */
      message: string;
      /** `detail` of the result body and of the webhook payload: validation entries or a message. */
      detail: ValidationDetail[] | string;
      /** Set when a timeout the client chose ended it (sent back as `X-Fal-Request-Timeout-Type`). */
      timeoutType?: RequestTimeoutType;
      logs: LogEntry[];
      metrics: RequestMetrics;
    };

/** The body POSTed to `fal_webhook`, exactly as fal sends it. */
export interface WebhookBody {
  request_id: string;
  gateway_request_id: string;
  status: 'OK' | 'ERROR';
  payload: unknown;
  error: string | null;
  payload_error?: string;
}

/** Builds the webhook body for an outcome. */
export function webhookBodyFor(requestId: string, outcome: RequestOutcome): WebhookBody {
  if (outcome.status === 'OK') {
    return { request_id: requestId, gateway_request_id: requestId, status: 'OK', payload: outcome.output, error: null };
  }
  return {
    request_id: requestId,
    gateway_request_id: requestId,
    status: 'ERROR',
    payload: { detail: outcome.detail },
    error: `Invalid status code: ${outcome.httpStatus}`,
  };
}
