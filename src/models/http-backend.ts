import { Agent, fetch, type Response } from 'undici';
import { parseJson, stringifyJson } from '../codec/json';
import { BackendError, BackendNotConfiguredError, InputValidationError } from '../errors';
import type { ValidationDetail } from '../workflows/shared/request';
import type { HttpBackend } from './registry';
import { PydanticDetail } from './input-validation';
import type { ModelContext, ModelRunner } from './types';

/**
 * A model served elsewhere over HTTP: the input is POSTed as JSON and the JSON answer is the output.
 * 422 is the backend rejecting the input (not retried); 5xx and connection errors are retried.
 */
export function createHttpBackend(modelId: string, backend: HttpBackend): ModelRunner {
  // fetch's default dispatcher gives up on response headers after 300 s; a slow model may take longer.
  const timeoutMs = backend.timeoutSeconds * 1000;
  const dispatcher = new Agent({ headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return {
    async run(input: unknown, ctx: ModelContext): Promise<unknown> {
      if (!backend.url) {
        throw new BackendNotConfiguredError(
          `Model ${modelId} has no backend configured: set "backend.url" for it in the models file ` +
            `(MODELS_FILE; the default models.json reads it from an environment variable, see the README).`,
        );
      }
      const started = Date.now();
      ctx.log(`POST ${redact(backend.url)}`);
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
      let response: Response;
      try {
        response = await fetch(backend.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...backend.headers },
          body: stringifyJson(input),
          signal,
          redirect: 'error',
          dispatcher,
        });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        throw new BackendError(`backend unreachable: ${(err as Error).message}`, true);
      }
      const text = await response.text();
      ctx.log(`backend answered ${response.status} in ${Date.now() - started} ms`);
      if (response.status === 422) throw new InputValidationError(validationDetail(text), 'Backend rejected the input');
      if (response.status >= 500 || response.status === 429 || response.status === 408) {
        throw new BackendError(`backend returned ${response.status}: ${text.slice(0, 500)}`, true);
      }
      if (!response.ok) throw new BackendError(`backend returned ${response.status}: ${text.slice(0, 500)}`, false);
      try {
        // Lossless: a seed past 2^53 or a long decimal reaches the result exactly as the backend wrote it.
        return parseJson(text);
      } catch {
        throw new BackendError(`backend returned a body that is not JSON: ${text.slice(0, 200)}`, false);
      }
    },
  };
}

/** Keeps a backend's own pydantic detail when it sends one, so the client sees the real field. */
function validationDetail(text: string): ValidationDetail[] {
  try {
    const parsed = PydanticDetail.safeParse((JSON.parse(text) as { detail?: unknown }).detail);
    if (parsed.success) return parsed.data;
  } catch {
    // Not JSON: fall through to a generic entry carrying the backend's words.
  }
  return [{ loc: ['body'], msg: text.slice(0, 500) || 'rejected by the backend', type: 'value_error' }];
}

function redact(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString();
}
