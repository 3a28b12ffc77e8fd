import type { WebhookBody } from '../domain/request';

export interface DeliverWebhookInput {
  requestId: string;
  url: string;
  body: WebhookBody;
  /** 1-based number of this attempt, for the receiver's logs. */
  attempt: number;
}

/** What one delivery attempt saw; the workflow decides what comes next from it. */
export interface DeliveryAttemptResult {
  /** True for any 2xx. */
  delivered: boolean;
  statusCode?: number;
  error?: string;
  latencyMs: number;
  /** Delay the receiver asked for with `Retry-After` on a 429 or 503. */
  retryAfterMs?: number;
}

export interface DeliverWebhookDeps {
  attemptTimeoutMs: number;
  userAgent: string;
}

/**
 * Builds the `deliverWebhook` activity: one POST, never following redirects. HTTP outcomes are
 * returned, not thrown: the retry schedule lives in the workflow, where every attempt is recorded.
 */
export function createDeliverWebhook(deps: DeliverWebhookDeps) {
  return async function deliverWebhook({ url, body }: DeliverWebhookInput): Promise<DeliveryAttemptResult> {
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': deps.userAgent },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.timeout(deps.attemptTimeoutMs),
      });
      // The body is not needed, but reading it lets the connection be reused.
      await response.arrayBuffer().catch(() => undefined);
      const delivered = response.status >= 200 && response.status < 300;
      return {
        delivered,
        statusCode: response.status,
        latencyMs: latency(),
        retryAfterMs:
          response.status === 429 || response.status === 503
            ? parseRetryAfter(response.headers.get('retry-after'))
            : undefined,
      };
    } catch (err) {
      const error = err as Error;
      const message = error.name === 'TimeoutError' ? `timed out after ${deps.attemptTimeoutMs} ms` : describe(error);
      return { delivered: false, error: message, latencyMs: latency() };
    }
  };
}

/** `Retry-After` is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function describe(error: Error): string {
  const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${cause.code}: ${cause.message ?? error.message}` : error.message;
}
