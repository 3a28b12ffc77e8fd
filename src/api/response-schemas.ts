/**
 * The shapes the API answers with, as zod schemas for the OpenAPI document (the route table,
 * `src/api/api-routes.ts`).
 * Routes build their bodies with plain code (`status-body.ts`, `result-body.ts`, the routes); the
 * schemathesis run in CI checks live answers against these, so the two cannot drift apart unnoticed.
 */
import { z } from 'zod';
import { RequestErrorType } from '../workflows/shared/errors';
import { LogLevel, QueueStatus } from '../workflows/shared/request';
import { DeliveryState } from '../workflows/webhook-delivery/messages';

const values = <T extends Record<string, string>>(table: T) => Object.values(table) as [T[keyof T], ...T[keyof T][]];

/** Most errors: a message, sometimes with fields of the route (`status`, `error_type`). */
export const ErrorBody = z
  .object({ detail: z.string() })
  .catchall(z.unknown())
  .meta({ id: 'Error', description: 'An error with a human-readable `detail`' });

/** One entry of a FastAPI/pydantic-v1 validation error. */
export const ValidationDetail = z
  .object({
    loc: z.array(z.union([z.string(), z.number()])),
    msg: z.string(),
    type: z.string(),
  })
  .meta({ id: 'ValidationDetail' });

/** 422: the fields that were wrong, `loc` naming `body`, `query`, `path` or `headers` first. */
export const ValidationErrorBody = z
  .object({ detail: z.array(ValidationDetail) })
  .meta({ id: 'ValidationError', description: "pydantic's validation error shape" });

export const LogEntry = z
  .object({
    message: z.string(),
    level: z.enum(values(LogLevel)),
    source: z.literal('USER'),
    timestamp: z.string(),
  })
  .meta({ id: 'LogEntry' });

const RequestUrls = {
  request_id: z.string(),
  response_url: z.url(),
  status_url: z.url(),
  cancel_url: z.url(),
};

/** `POST /{owner}/{app}`: the request is queued. */
export const SubmitResponse = z
  .object({ status: z.literal(QueueStatus.InQueue), ...RequestUrls, queue_position: z.number().int().min(0) })
  .meta({ id: 'SubmitResponse' });

const InQueueStatus = z.object({
  status: z.literal(QueueStatus.InQueue),
  ...RequestUrls,
  queue_position: z.number().int().min(0),
  logs: z.array(LogEntry),
});
const InProgressStatus = z.object({
  status: z.literal(QueueStatus.InProgress),
  ...RequestUrls,
  logs: z.array(LogEntry),
});
const CompletedStatus = z.object({
  status: z.literal(QueueStatus.Completed),
  ...RequestUrls,
  logs: z.array(LogEntry),
  metrics: z.object({ inference_time: z.number().nullable() }),
  error: z.string().optional(),
  error_type: z.enum(values(RequestErrorType)).optional(),
});

/** `GET .../status` (and each event of the status stream). */
export const StatusResponse = z
  .discriminatedUnion('status', [InQueueStatus, InProgressStatus, CompletedStatus])
  .meta({ id: 'StatusResponse' });

/** One Server-Sent Event of the status stream: its `data` is a {@link StatusResponse} as JSON. */
export const StatusEvent = z
  .object({
    data: z.string().meta({ contentMediaType: 'application/json', description: 'A StatusResponse, as JSON' }),
    event: z.string().optional(),
    id: z.string().optional(),
  })
  .meta({ id: 'StatusEvent' });

/** A finished request that failed: the result endpoint answers with its status code and this body. */
export const ResultErrorBody = z
  .object({
    detail: z.union([z.string(), z.array(ValidationDetail)]),
    error_type: z.enum(values(RequestErrorType)),
  })
  .meta({ id: 'ResultError' });

/** The model's output, whatever JSON it is. */
export const ModelOutput = z.unknown().meta({ id: 'ModelOutput', description: "The model's output as it returned it" });

export const CancelAccepted = z.object({ status: z.literal('CANCELLATION_REQUESTED') });
export const CancelRejected = z.object({ status: z.literal('ALREADY_COMPLETED') });
export const CancelNotFound = z.object({ detail: z.string(), status: z.literal('NOT_FOUND') });

export const WebhookDeliveryLog = z
  .object({
    request_id: z.string(),
    webhook_id: z.string(),
    url: z.string(),
    state: z.enum(values(DeliveryState)),
    next_attempt_at: z.string().nullable(),
    attempts: z.array(
      z.object({
        attempt: z.number().int(),
        at: z.string(),
        trigger: z.string(),
        status_code: z.number().int().nullable(),
        error: z.string().nullable(),
        latency_ms: z.number(),
        next_attempt_at: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'WebhookDeliveryLog' });

export const RedeliveryAccepted = z.object({ status: z.literal('REDELIVERY_REQUESTED'), webhook_id: z.string() });
export const WebhookSecret = z.object({ owner: z.string(), secret: z.string(), next_secret: z.string().optional() });
export const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).meta({ id: 'Jwks' });

export const UploadInitiated = z.object({ upload_url: z.url(), file_url: z.url() });
export const StoredFile = z
  .object({
    url: z.string(),
    content_type: z.string(),
    file_name: z.string(),
    file_size: z.number().int(),
    width: z.number().int().optional(),
    height: z.number().int().optional(),
  })
  .meta({ id: 'File' });

export const Health = z.object({ status: z.literal('ok') });
/** `/healthz`: up, and which version of fal-queue-temporal serves the API. */
export const Liveness = Health.extend({ version: z.string() });
export const NotReady = z.object({ status: z.literal('unavailable'), detail: z.string() });
