import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ValidationDetail } from '../workflows/shared/request';
import { stringifyJson } from '../codec/json';
import { BackendError, BackendNotConfiguredError, InputValidationError } from '../errors';
import { storeFileOutputs } from './cog-outputs';
import {
  cancelPrediction,
  describeNetworkError,
  healthStatus,
  parsePrediction,
  redact,
  sendJson,
  type CogCall,
  type CogPrediction,
  type HttpAnswer,
} from './cog-protocol';
import { LogForwarder, type CogWebhookReceiver, type WebhookSubscription } from './cog-webhooks';
import type { CogBackend } from './registry';
import { PydanticDetail } from './input-validation';
import type { ModelContext, ModelRunner } from './types';

// Cog answers 409 while every prediction slot is busy and 503 while setup() runs; both are waited out.
const BUSY_RETRY_MS = 1000;

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
