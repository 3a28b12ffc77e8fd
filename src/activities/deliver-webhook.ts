import { Context } from '@temporalio/activity';
import { request, type Dispatcher } from 'undici';
import { stringifyJson } from '../codec/json';
import type { WebhookBody } from '../workflows/shared/request';
import { LocalAttemptGate } from '../webhooks/local-attempts';
import type { WebhookSigner } from '../webhooks/signing';

export interface DeliverWebhookInput {
  requestId: string;
  owner: string;
  url: string;
  /** 1-based number of this attempt in the delivery log. */
  attempt: number;
  timeoutMs: number;
  /** The body, when small enough to travel through history; otherwise read from the delivery's input. */
  body?: WebhookBody;
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
  /**
   * A local attempt that was not made (too many under way, or the receiver was slow lately: see LocalAttemptGate);
   * nothing was sent, and the workflow makes the attempt as an activity.
   */
  deferred?: boolean;
}

/** The run of the delivery workflow an attempt belongs to. */
export interface DeliveryExecution {
  workflowId: string;
  runId: string;
}

export interface DeliverWebhookDeps {
  userAgent: string;
  /**
   * The connection pool every POST goes through: `createEgressAgent`, which refuses private and other non-public
   * addresses (see `src/egress`). undici's `request` on it costs a fraction of `fetch`'s CPU per POST.
   */
  dispatcher: Dispatcher;
  signer: WebhookSigner;
  /** Reads the body from the input of the delivery run, for bodies too large to pass to every attempt. */
  loadBody(execution: DeliveryExecution): Promise<WebhookBody>;
  /** Which attempts may run as local activities; omitted = a gate with its defaults. */
  localAttempts?: LocalAttemptGate;
}

/**
 * Builds the `deliverWebhook` activity: one signed POST, never following redirects. HTTP outcomes
 * are returned, not thrown: the retry schedule lives in the workflow, where every attempt is recorded.
 * Signing happens here, so no secret ever enters workflow history.
 */
export function createDeliverWebhook(deps: DeliverWebhookDeps) {
  const gate = deps.localAttempts ?? new LocalAttemptGate();
  return async function deliverWebhook(input: DeliverWebhookInput): Promise<DeliveryAttemptResult> {
    let leave: (() => void) | undefined;
    if (Context.current().info.isLocal) {
      leave = gate.tryEnter(input.url);
      if (!leave) return { delivered: false, deferred: true, latencyMs: 0 };
    }
    try {
      const result = await attempt(input);
      gate.record(input.url, result.latencyMs);
      return result;
    } finally {
      leave?.();
    }
  };

  async function attempt(input: DeliverWebhookInput): Promise<DeliveryAttemptResult> {
    const body = input.body ?? (await deps.loadBody(deliveryExecution()));
    // Lossless: numbers a double cannot hold go out as the backend wrote them, and the signature covers these bytes.
    const raw = stringifyJson(body);
    const signature = await deps.signer.headers({
      requestId: input.requestId,
      owner: input.owner,
      body: raw,
      timestamp: Math.floor(Date.now() / 1000),
    });
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    const timeout = AbortSignal.timeout(input.timeoutMs);
    try {
      // undici's `request` never follows a redirect: a 3xx is a failed attempt.
      const response = await request(input.url, {
        dispatcher: deps.dispatcher,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': deps.userAgent, ...signature },
        body: raw,
        signal: timeout,
      });
      // The body is not needed, but reading it lets the connection be reused.
      await response.body.dump().catch(() => undefined);
      const status = response.statusCode;
      return {
        delivered: status >= 200 && status < 300,
        statusCode: status,
        latencyMs: latency(),
        retryAfterMs:
          status === 429 || status === 503 ? parseRetryAfter(headerOf(response.headers, 'retry-after')) : undefined,
      };
    } catch (err) {
      // The attempt's own deadline, known by its signal rather than by the error's name.
      const message = timeout.aborted ? `timed out after ${input.timeoutMs} ms` : describe(err as Error);
      return { delivered: false, error: message, latencyMs: latency() };
    }
  }
}

function deliveryExecution(): DeliveryExecution {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw new Error('deliverWebhook without a body must run inside a delivery workflow');
  return execution;
}

/** `Retry-After` is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The error's code (ECONNREFUSED, UND_ERR_SOCKET, ...) and message; an egress refusal's message alone. */
function describe(error: Error): string {
  const { code } = error as Error & { code?: string };
  if (code === 'EGRESS_REFUSED') return error.message;
  return code ? `${code}: ${error.message}` : error.message;
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string | null {
  const value = headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? null;
}
