import { createFalClient, type FalClient, type RequestMiddleware } from '@fal-ai/client';
import { TEST_KEY, type Stack } from '../helpers/stack';

/**
 * The `requestMiddleware` the README documents: `@fal-ai/client` hard-codes fal's hosts, and this
 * points each at our service — the queue at the base URL, the synchronous `fal.run` at `/run`, and
 * the REST API (storage uploads) at the base URL.
 */
export function pointFalAt(base: string): RequestMiddleware {
  return async (request) => ({
    ...request,
    url: request.url
      .replace(/^https:\/\/queue\.fal\.run(?=\/|$)/, base)
      .replace(/^https:\/\/fal\.run(?=\/|$)/, `${base}/run`)
      .replace(/^https:\/\/rest\.fal\.ai(?=\/|$)/, base),
  });
}

/** An official client, unmodified, talking to the stack with `key`. */
export function falClientFor(stack: Stack, key: string = TEST_KEY): FalClient {
  return createFalClient({ credentials: key, requestMiddleware: pointFalAt(stack.url) });
}
