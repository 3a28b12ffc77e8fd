import { z } from 'zod';
import { MODEL_ID_SEGMENT } from '../models/registry';

const Segment = z.string().regex(MODEL_ID_SEGMENT, 'not a valid model id segment');

/** `POST /{owner}/{app}[/{path...}]` */
export const SubmitParams = z.object({
  owner: Segment,
  app: Segment,
  path: z.array(Segment).optional(),
});
export type SubmitParams = z.infer<typeof SubmitParams>;

/** Webhook URLs must be absolute http(s) URLs without credentials in them. */
export const WebhookUrl = z
  .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' })
  .refine((u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password), 'must not carry credentials');

export const SubmitQuery = z.object({
  fal_webhook: WebhookUrl.optional(),
  /** Refuse the submit (429) when this many requests of the model already wait. */
  fal_max_queue_length: z.coerce.number().int().min(0).optional(),
});
export type SubmitQuery = z.infer<typeof SubmitQuery>;

/** A model's input is a JSON object. */
export const SubmitBody = z.record(z.string(), z.unknown(), { error: 'value is not a valid dict' });
export type SubmitBody = z.infer<typeof SubmitBody>;

/** `/{owner}/{app}/requests/{request_id}[...]` */
export const RequestParams = z.object({
  owner: Segment,
  app: Segment,
  requestId: z.string().min(1).max(200),
});
export type RequestParams = z.infer<typeof RequestParams>;

const Flag = z
  .enum(['0', '1', 'true', 'false'])
  .optional()
  .transform((v) => v === '1' || v === 'true');

export const StatusQuery = z.object({ logs: Flag });
export type StatusQuery = z.infer<typeof StatusQuery>;

export const FileParams = z.object({ fileId: z.string(), fileName: z.string() });
export type FileParams = z.infer<typeof FileParams>;

/**
 * Longest lifetime a client may ask for its files: ten years. Dates much further out cannot be
 * written (`toISOString` throws above year 275760), which used to fail every save of the request.
 */
export const MAX_EXPIRATION_SECONDS = 10 * 365 * 24 * 3600;

/**
 * fal's object lifecycle preference, a JSON header: `{"expiration_duration_seconds": N}` sets how long
 * the files a request (or an upload) stores are kept. Other keys fal knows (`initial_acl`) are ignored.
 */
export const ObjectLifecycle = z
  .string()
  .transform((raw, ctx) => {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON like {"expiration_duration_seconds": 3600}' });
      return z.NEVER;
    }
  })
  .pipe(
    z.object({
      expiration_duration_seconds: z.number().int().positive().max(MAX_EXPIRATION_SECONDS).optional(),
    }),
  );
export type ObjectLifecycle = z.infer<typeof ObjectLifecycle>;

/** fal's boolean headers: `1|true|yes` or `0|false|no`, any case. */
const HeaderFlag = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['1', 'true', 'yes', '0', 'false', 'no'], { error: 'must be one of 1, true, yes, 0, false, no' }))
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

/** Headers of a submit (queue or synchronous run) beyond the API key. */
export const SubmitHeaders = z.object({
  /** `low` starts only when no `normal` request of the model is waiting. */
  'x-fal-queue-priority': z.enum(['normal', 'low']).optional(),
  /** Seconds the request may wait to start; then it ends with a 504 timeout. */
  'x-fal-request-timeout': z.coerce.number().positive().optional(),
  /** A run that fails is not attempted again. */
  'x-fal-no-retry': HeaderFlag.optional(),
  /** The same key from the same owner for the same model returns the same request instead of a second run. */
  'idempotency-key': z.string().min(1).max(255).optional(),
  'x-fal-object-lifecycle-preference': ObjectLifecycle.optional(),
});
export type SubmitHeaders = z.infer<typeof SubmitHeaders>;

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";

/**
 * A MIME type as HTTP carries it: `type/subtype`, optionally with `; name=value` parameters, all in
 * RFC 9110 tokens. So nothing a header cannot carry (CR, LF, non-Latin-1) gets stored as a file's type.
 */
export const MIME_TYPE = new RegExp(`^${TOKEN}/${TOKEN}([ \\t]*;[ \\t]*${TOKEN}=${TOKEN})*$`);

/** `POST /storage/upload/initiate` */
export const UploadInitiateBody = z.object({
  content_type: z
    .string()
    .min(1)
    .max(255)
    .regex(MIME_TYPE, 'must be a MIME type like image/png or text/plain; charset=utf-8')
    .default('application/octet-stream'),
  file_name: z.string().min(1).max(1000).default('file'),
});
export type UploadInitiateBody = z.infer<typeof UploadInitiateBody>;

export const UploadHeaders = z.object({ 'x-fal-object-lifecycle': ObjectLifecycle.optional() });
export type UploadHeaders = z.infer<typeof UploadHeaders>;

/** `PUT /storage/upload/{fileId}?token=...` */
export const UploadParams = z.object({ fileId: z.string().min(1).max(100) });
export type UploadParams = z.infer<typeof UploadParams>;
export const UploadQuery = z.object({ token: z.string().min(1).max(200) });
export type UploadQuery = z.infer<typeof UploadQuery>;
