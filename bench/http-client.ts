import { request } from 'undici';

/**
 * The bench's HTTP client for the requests it times. `undici`: undici's `request` on its global keep-alive pool, the
 * leanest client Node has, so that a submit's time is the API's and the loopback hop's, as a raw `workflow.start`'s
 * is the server's and the SDK client's. `fetch`: Node's global `fetch` (undici's too, with the Fetch standard's
 * objects on top), as `@fal-ai/client` uses it; on the 2-core VM it added about 1 ms to each call (docs/performance.md).
 */
export type HttpClientKind = 'undici' | 'fetch';

export interface JsonAnswer {
  status: number;
  body: unknown;
}

export type JsonCall = (
  url: string,
  init?: { method?: 'GET' | 'POST' | 'PUT'; headers?: Record<string, string>; body?: string },
) => Promise<JsonAnswer>;

export function jsonClient(kind: HttpClientKind): JsonCall {
  if (kind === 'fetch') {
    return async (url, init = {}) => {
      const res = await fetch(url, init);
      return { status: res.status, body: await res.json() };
    };
  }
  return async (url, init = {}) => {
    const res = await request(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body });
    return { status: res.statusCode, body: await res.body.json() };
  };
}
