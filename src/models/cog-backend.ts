import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { parseJson, stringifyJson } from '../codec/json';
import type { ValidationDetail } from '../domain/request';
import { BackendError, BackendNotConfiguredError, InputValidationError } from '../errors';
import type { StoredFile } from '../storage/file-store';
import { decodeDataUri, outputFileName, saveOutputFile } from './output-files';
import type { CogBackend } from './registry';
import type { ModelContext, ModelRunner } from './types';

/**
 * Where this process listens for a Cog server's webhooks, which carry a prediction's logs while it runs.
 * Cog has no status endpoint to poll ("polling for prediction status is not currently supported", cog's
 * docs/http.md), so its webhooks are the only way to see logs before the prediction ends.
 */
export interface CogWebhookOptions {
  /** Address to bind. @default '127.0.0.1' */
  host: string;
  /** Port to bind; 0 picks a free one each time the listener opens. @default 0 */
  port: number;
  /** Base URL Cog servers reach the listener at; unset = `http://<host>:<bound port>`. */
  publicUrl?: string;
}

/** A Cog prediction object, as its HTTP API and webhooks send it. */
interface CogPrediction {
  id?: string;
  status?: string;
  output?: unknown;
  logs?: string;
  error?: string | null;
}

const PydanticDetail = z.array(
  z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() }),
);

// Cog answers 409 while every prediction slot is busy and 503 while setup() runs; both are waited out.
const BUSY_RETRY_MS = 1000;
// Short calls (cancel, health check, schema) never hold a run up for long.
const SHORT_CALL_TIMEOUT_MS = 10_000;
const MAX_WEBHOOK_BYTES = 8 * 1024 * 1024;

/**
 * A model served by a Cog predictor's HTTP server (any image built with `cog build`, or
 * `python -m cog.server.http`).
 *
 * Protocol, chosen from cog's own server (coglet):
 * - `PUT /predictions/<id>` **synchronously**, with an id of our own per attempt: the answer carries the
 *   final state, and a dropped connection (a dead worker) makes Cog cancel the prediction by itself.
 * - the same body names a `webhook` on this process with `webhook_events_filter: ["logs"]`: Cog POSTs the
 *   prediction, with its whole `logs` so far, at most every 500 ms; new lines go to {@link ModelContext.log}.
 * - cancel: `POST /predictions/<id>/cancel` as soon as the request is cancelled (the predictor sees
 *   `CancelationException`), then the call is dropped.
 * - a 422 (`detail` in pydantic's shape, `loc` `["body", "input", field]`) is the client's validation
 *   error; a `failed` prediction is not retried; 409 (all slots busy) and 503 while setup runs are waited
 *   out; 5xx and connection errors are retried.
 * - file outputs (`cog.Path`) come as data URIs, or as URLs when the Cog server runs with `--upload-url`;
 *   both are stored in our file store and described as fal does (`url`, `content_type`, `file_name`,
 *   `file_size`, `width`/`height` for images). URLs are recognised by `format: uri` in the model's
 *   OpenAPI `Output` schema and fetched like `*_url` inputs (size limit and egress rules included).
 */
export function createCogBackend(modelId: string, backend: CogBackend, webhooks: CogWebhookReceiver): ModelRunner {
  return {
    async run(input: unknown, ctx: ModelContext): Promise<unknown> {
      if (!backend.url) {
        throw new BackendNotConfiguredError(
          `Model ${modelId} has no Cog server configured: set "backend.url" for it in the models file (MODELS_FILE).`,
        );
      }
      const base = backend.url.replace(/\/+$/, '');
      const predictionId = `${ctx.requestId}-${randomBytes(4).toString('hex')}`;
      const logs = new LogForwarder((line) => ctx.log(line));
      const call = { base, headers: backend.headers };

      let subscription: WebhookSubscription | undefined;
      try {
        subscription = await webhooks.subscribe((prediction) => {
          if (typeof prediction.logs === 'string') logs.update(prediction.logs);
        });
      } catch (err) {
        ctx.log(`cannot receive Cog's log webhooks (${(err as Error).message}); logs will arrive at the end`, 'WARN');
      }

      // Dropping the call alone would cancel too (Cog cancels a synchronous prediction whose caller went
      // away), but the explicit cancel is the documented way and reaches the predictor first.
      const callAbort = new AbortController();
      const onCancel = () => {
        void cancelPrediction(call, predictionId).finally(() => callAbort.abort(ctx.signal.reason));
      };
      ctx.signal.addEventListener('abort', onCancel, { once: true });
      try {
        ctx.signal.throwIfAborted();
        ctx.log(`Cog prediction ${predictionId} on ${redact(base)}`);
        const answer = await createPrediction(call, predictionId, input, subscription?.url, callAbort.signal, ctx);
        ctx.signal.throwIfAborted();
        const prediction = parsePrediction(answer.text);
        logs.finish(prediction?.logs);
        return await outcome(answer.status, answer.text, prediction, call, ctx);
      } catch (err) {
        // The caller only wants the cancellation, whatever the dropped call threw.
        ctx.signal.throwIfAborted();
        throw err;
      } finally {
        ctx.signal.removeEventListener('abort', onCancel);
        logs.finish();
        await subscription?.close();
      }
    },
  };
}

interface CogCall {
  base: string;
  headers: Record<string, string>;
}

/** PUTs the prediction and waits for its end, waiting out a busy or still-starting server first. */
async function createPrediction(
  call: CogCall,
  predictionId: string,
  input: unknown,
  webhook: string | undefined,
  signal: AbortSignal,
  ctx: ModelContext,
): Promise<HttpAnswer> {
  const body = stringifyJson({
    id: predictionId,
    input,
    ...(webhook ? { webhook, webhook_events_filter: ['logs'] } : {}),
  });
  const said = new Set<string>();
  const sayOnce = (key: string, message: string) => {
    if (!said.has(key)) ctx.log(message);
    said.add(key);
  };
  for (;;) {
    let answer: HttpAnswer;
    try {
      answer = await sendJson('PUT', `${call.base}/predictions/${encodeURIComponent(predictionId)}`, {
        headers: call.headers,
        body,
        signal,
      });
    } catch (err) {
      signal.throwIfAborted();
      throw new BackendError(`Cog server unreachable: ${describeNetworkError(err)}`, true);
    }
    if (answer.status === 409) {
      sayOnce('busy', 'Cog server busy (every prediction slot in use): waiting for a free slot');
    } else if (answer.status === 503) {
      const health = await healthStatus(call);
      if (health !== 'STARTING') {
        throw new BackendError(`Cog server is not ready (health-check status ${health ?? 'unknown'})`, true);
      }
      sayOnce('setup', 'Cog server still running setup(): waiting for it');
    } else {
      return answer;
    }
    await sleep(BUSY_RETRY_MS, undefined, { signal });
  }
}

/** Turns Cog's answer into our output, or into the error the workflow decides on. */
async function outcome(
  status: number,
  text: string,
  prediction: CogPrediction | undefined,
  call: CogCall,
  ctx: ModelContext,
): Promise<unknown> {
  if (status === 422) throw new InputValidationError(validationDetail(text), 'Cog rejected the input');
  if (status >= 500 || status === 429 || status === 408 || status === 202) {
    throw new BackendError(`Cog server answered ${status}: ${text.slice(0, 500)}`, true);
  }
  if (status < 200 || status > 299 || !prediction) {
    throw new BackendError(`Cog server answered ${status}: ${text.slice(0, 500)}`, false);
  }
  switch (prediction.status) {
    case 'succeeded':
      return storeFileOutputs(prediction.output, call, ctx);
    case 'failed':
      // The predictor raised: running it again on the same input is not expected to help.
      throw new BackendError(`Cog prediction failed: ${prediction.error ?? 'no error message'}`, false);
    case 'canceled':
      // Not by us (that case never gets here): the Cog server stopped it, e.g. while shutting down.
      throw new BackendError('Cog prediction was canceled by the Cog server', true);
    default:
      throw new BackendError(`Cog server answered with prediction status ${String(prediction.status)}`, true);
  }
}

async function cancelPrediction(call: CogCall, predictionId: string): Promise<void> {
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

async function healthStatus(call: CogCall): Promise<string | undefined> {
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

// ---------------------------------------------------------------------------------------------
// Logs

/**
 * Cog sends a prediction's whole log so far each time; this forwards each complete line once.
 * Webhooks may arrive out of order, so a log no longer than what was already seen is ignored.
 */
export class LogForwarder {
  private forwarded = 0;
  private latest = '';

  constructor(private readonly emit: (line: string) => void) {}

  update(logs: string): void {
    if (logs.length <= this.latest.length || !logs.startsWith(this.latest.slice(0, this.forwarded))) return;
    this.latest = logs;
    const end = logs.lastIndexOf('\n') + 1;
    if (end > this.forwarded) this.send(logs.slice(this.forwarded, end), end);
  }

  /** Forwards the rest, including a last line without a newline; `logs` is the final log when known. */
  finish(logs?: string): void {
    if (logs !== undefined) this.update(logs);
    if (this.latest.length > this.forwarded) this.send(this.latest.slice(this.forwarded), this.latest.length);
  }

  private send(text: string, end: number): void {
    this.forwarded = end;
    for (const line of text.split(/\r?\n|\r/)) if (line.trim() !== '') this.emit(line);
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs

type JsonSchema = Record<string, unknown>;

/**
 * Replaces the file outputs in a Cog output by files in our store: every data URI, and every http(s) URL
 * the model's OpenAPI `Output` schema marks `format: uri` (a `cog.Path` uploaded with `--upload-url`).
 */
async function storeFileOutputs(output: unknown, call: CogCall, ctx: ModelContext): Promise<unknown> {
  const schema = containsHttpUrl(output) ? await outputSchema(call) : undefined;
  return convert(output, schema?.root, 'output');

  async function convert(value: unknown, node: JsonSchema | undefined, name: string): Promise<unknown> {
    const resolved = schema ? resolveRef(node, schema.components) : undefined;
    if (typeof value === 'string') return convertString(value, resolved, name);
    if (Array.isArray(value)) {
      const items = resolved?.items as JsonSchema | undefined;
      const out: unknown[] = [];
      for (const [i, item] of value.entries()) out.push(await convert(item, items, `${name}_${i}`));
      return out;
    }
    if (value && typeof value === 'object') {
      const properties = (resolved?.properties ?? {}) as Record<string, JsonSchema>;
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = await convert(item, properties[key], key);
      return out;
    }
    return value;
  }

  async function convertString(value: string, node: JsonSchema | undefined, name: string): Promise<unknown> {
    if (/^data:/i.test(value)) {
      const decoded = decodeDataUri(value);
      if (!decoded) return value;
      ctx.signal.throwIfAborted();
      return saveOutputFile(ctx, { ...decoded, fileName: outputFileName(name, decoded.contentType) });
    }
    if (/^https?:\/\//i.test(value) && node?.format === 'uri') return fetchAndStore(value, name);
    return value;
  }

  async function fetchAndStore(url: string, name: string): Promise<StoredFile> {
    let fetched;
    try {
      fetched = await ctx.fetchInput(url);
    } catch (err) {
      ctx.signal.throwIfAborted();
      throw new BackendError(`cannot fetch the Cog output file ${redact(url)}: ${(err as Error).message}`, true);
    }
    const contentType = fetched.contentType.split(';')[0]!.trim().toLowerCase();
    const baseName = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
    return saveOutputFile(ctx, {
      data: fetched.data,
      contentType,
      fileName: baseName || outputFileName(name, contentType),
    });
  }
}

function containsHttpUrl(value: unknown): boolean {
  if (typeof value === 'string') return /^https?:\/\//i.test(value);
  if (Array.isArray(value)) return value.some(containsHttpUrl);
  if (value && typeof value === 'object') return Object.values(value).some(containsHttpUrl);
  return false;
}

async function outputSchema(
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

function resolveRef(node: JsonSchema | undefined, components: Record<string, JsonSchema>): JsonSchema | undefined {
  let current = node;
  for (let depth = 0; current && depth < 10; depth++) {
    if (typeof current.$ref === 'string') {
      current = components[current.$ref.replace('#/components/schemas/', '')];
    } else if (Array.isArray(current.allOf) && current.allOf.length === 1) {
      current = current.allOf[0] as JsonSchema;
    } else {
      return current;
    }
  }
  return current;
}

// ---------------------------------------------------------------------------------------------
// Errors

function parsePrediction(text: string): CogPrediction | undefined {
  try {
    const parsed = parseJson(text);
    return parsed && typeof parsed === 'object' ? (parsed as CogPrediction) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Cog's 422: pydantic entries located at `["body", "input", field]` (the prediction request's body), or an
 * `error` message when the predictor's own input preparation refused it. Our client's body *is* the input,
 * so the entries are re-rooted at `["body", field]`.
 */
function validationDetail(text: string): ValidationDetail[] {
  let body: { detail?: unknown; error?: unknown } | undefined;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Not JSON: fall through to a generic entry carrying Cog's words.
  }
  const parsed = PydanticDetail.safeParse(body?.detail);
  if (parsed.success) {
    return parsed.data.map((entry) => {
      const [first, second, ...rest] = entry.loc;
      return first === 'body' && second === 'input' ? { ...entry, loc: ['body', ...rest] } : entry;
    });
  }
  const message = typeof body?.error === 'string' ? body.error : text.slice(0, 500);
  return [{ loc: ['body'], msg: message || 'rejected by the Cog server', type: 'value_error' }];
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ...) is in `cause`. */
function describeNetworkError(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown }; message?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.cause?.code === 'string') return e.cause.code;
  return String(e.message ?? err);
}

function redact(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString().replace(/\/$/, '');
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface HttpAnswer {
  status: number;
  text: string;
}

/**
 * One JSON call over node:http, because a synchronous prediction can run for hours: fetch (undici) gives
 * up on a response whose headers take more than 5 minutes. TCP keep-alive keeps idle NATs from dropping it.
 */
function sendJson(
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

// ---------------------------------------------------------------------------------------------
// Webhook listener

interface WebhookSubscription {
  /** The URL to give Cog as the prediction's `webhook`. */
  url: string;
  close(): Promise<void>;
}

/**
 * The HTTP listener Cog servers POST log updates to. One per process, shared by every Cog model; it is
 * open only while a prediction is in flight, and each prediction gets an unguessable path of its own.
 */
export class CogWebhookReceiver {
  private readonly subscribers = new Map<string, (prediction: CogPrediction) => void>();
  private server: Server | undefined;
  private baseUrl: Promise<string> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: CogWebhookOptions) {}

  /** Starts receiving a prediction's updates; `close()` ends it (and the listener, if it was the last). */
  async subscribe(onUpdate: (prediction: CogPrediction) => void): Promise<WebhookSubscription> {
    await this.closing;
    const token = randomBytes(16).toString('hex');
    this.subscribers.set(token, onUpdate);
    const listening = (this.baseUrl ??= this.listen());
    try {
      const base = await listening;
      return { url: `${base}/cog-webhook/${token}`, close: () => this.unsubscribe(token) };
    } catch (err) {
      // The next prediction tries to listen again rather than inherit this failure.
      if (this.baseUrl === listening) this.baseUrl = undefined;
      this.subscribers.delete(token);
      throw err;
    }
  }

  private async unsubscribe(token: string): Promise<void> {
    if (!this.subscribers.delete(token) || this.subscribers.size > 0 || !this.server) return;
    const server = this.server;
    this.server = undefined;
    this.baseUrl = undefined;
    this.closing = new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    await this.closing;
    this.closing = undefined;
  }

  private async listen(): Promise<string> {
    const server = createServer((req, res) => {
      void this.receive(req)
        .catch(() => 400)
        .then((status) => res.writeHead(status, { 'content-type': 'application/json' }).end('{}'));
    });
    server.on('error', () => undefined);
    const listening = once(server, 'listening');
    server.listen(this.options.port, this.options.host);
    try {
      await listening;
    } catch (err) {
      throw new Error(`cannot listen on ${this.options.host}:${this.options.port}: ${(err as Error).message}`);
    }
    this.server = server;
    const { port } = server.address() as AddressInfo;
    // A wildcard bind is reachable on loopback at least; other hosts need `publicUrl`.
    const wildcard = this.options.host === '0.0.0.0' || this.options.host === '::';
    const host = wildcard
      ? '127.0.0.1'
      : this.options.host.includes(':')
        ? `[${this.options.host}]`
        : this.options.host;
    return (this.options.publicUrl ?? `http://${host}:${port}`).replace(/\/+$/, '');
  }

  private async receive(req: IncomingMessage): Promise<number> {
    const token = /^\/cog-webhook\/([0-9a-f]{32})$/.exec(req.url ?? '')?.[1];
    const subscriber = token ? this.subscribers.get(token) : undefined;
    if (req.method !== 'POST' || !subscriber) {
      req.resume();
      return 404;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end even when too large, so the answer still reaches Cog on a healthy connection.
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= MAX_WEBHOOK_BYTES) chunks.push(chunk);
    }
    if (size > MAX_WEBHOOK_BYTES) return 413;
    const prediction = parsePrediction(Buffer.concat(chunks).toString('utf8'));
    if (!prediction) return 400;
    subscriber(prediction);
    return 200;
  }
}
