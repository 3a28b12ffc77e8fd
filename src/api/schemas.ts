import { z } from 'zod';

const Segment = z.string().regex(/^[A-Za-z0-9][\w.-]*$/, 'not a valid model id segment');

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
