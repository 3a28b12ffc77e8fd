/**
 * Cog's HTTP API as this client speaks it: the prediction object, the long synchronous call, and the
 * short calls (cancel, health check, the model's OpenAPI schema).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseJson } from '../codec/json';

/** A Cog prediction object, as its HTTP API and webhooks send it. */
export interface CogPrediction {
  id?: string;
  status?: string;
  output?: unknown;
  logs?: string;
  error?: string | null;
}

// Short calls (cancel, health check, schema) never hold a run up for long.
export const SHORT_CALL_TIMEOUT_MS = 10_000;

/** Where and how to call one Cog server. */
export interface CogCall {
  base: string;
  headers: Record<string, string>;
}

/** Asks Cog to cancel a prediction; best effort. */
export async function cancelPrediction(call: CogCall, predictionId: string): Promise<void> {
  try {
    const response = await fetch(`${call.base}/predictions/${encodeURIComponent(predictionId)}/cancel`, {
      method: 'POST',
      headers: call.headers,
      signal: AbortSignal.timeout(SHORT_CALL_TIMEOUT_MS),
    });
    await response.body?.cancel();
  } catch {
    // Dropping the prediction's own call (next) cancels it as well.
  }
}

/** The Cog server's health-check status (`READY`, `STARTING`, ...), or undefined when it does not answer. */
export async function healthStatus(call: CogCall): Promise<string | undefined> {
  try {
    const response = await fetch(`${call.base}/health-check`, {
      headers: call.headers,
      signal: AbortSignal.timeout(SHORT_CALL_TIMEOUT_MS),
    });
    const body = (await response.json()) as { status?: unknown };
    return typeof body.status === 'string' ? body.status : undefined;
  } catch {
    return undefined;
  }
}

export type JsonSchema = Record<string, unknown>;

/** The model's OpenAPI `Output` schema and its components, or undefined when the server does not say. */
export async function outputSchema(
  call: CogCall,
): Promise<{ root: JsonSchema; components: Record<string, JsonSchema> } | undefined> {
  try {
    const response = await fetch(`${call.base}/openapi.json`, {
      headers: call.headers,
      signal: AbortSignal.timeout(SHORT_CALL_TIMEOUT_MS),
    });
    if (!response.ok) return undefined;
    const doc = (await response.json()) as { components?: { schemas?: Record<string, JsonSchema> } };
    const components = doc.components?.schemas ?? {};
    const root = components.Output;
    return root ? { root, components } : undefined;
  } catch {
    // Without a schema only data URIs are recognised as files; URLs stay as they are.
    return undefined;
  }
}

/** A prediction object from Cog's JSON, or undefined for anything else. */
export function parsePrediction(text: string): CogPrediction | undefined {
  try {
    const parsed = parseJson(text);
    return parsed && typeof parsed === 'object' ? (parsed as CogPrediction) : undefined;
  } catch {
    return undefined;
  }
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ...) is in `cause`. */
export function describeNetworkError(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown }; message?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return String(e.message ?? err);
}

/** A URL fit for logs: no credentials, no query. */
export function redact(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString().replace(/\/$/, '');
}

export interface HttpAnswer {
  status: number;
  text: string;
}

/**
 * One JSON call over node:http, because a synchronous prediction can run for hours: fetch (undici) gives
 * up on a response whose headers take more than 5 minutes. TCP keep-alive keeps idle NATs from dropping it.
 */
export function sendJson(
  method: string,
  url: string,
  options: { headers: Record<string, string>; body: string; signal: AbortSignal },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      target,
      {
        method,
        headers: {
          ...options.headers,
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(options.body),
        },
        signal: options.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
    req.on('error', reject);
    req.end(options.body);
  });
}
