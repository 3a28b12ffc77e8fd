import { createEgressFetch } from '../egress/agent';
import { EgressPolicy } from '../egress/policy';
import type { FetchedInput } from './types';

/**
 * Why a `*_url` input could not be fetched. The message names the scheme and host only: a data URI
 * can be megabytes long, and an http(s) path or query may carry a signed token.
 */
export class InputFetchError extends Error {
  override name = 'InputFetchError';
}

/** Limits for {@link createInputFetcher}. */
export interface InputFetcherOptions {
  /** Largest accepted body, checked while it streams in (and before decoding a data URI). */
  maxBytes: number;
  /** Bound on one http(s) fetch, from the request to the body's last byte. */
  timeoutMs: number;
  /** Stand-in for the global `fetch`, for tests. */
  fetchImpl?: typeof fetch;
  /**
   * Which addresses http(s) inputs may come from, judged on the address connected to (redirects too).
   * Ignored when `fetchImpl` is given.
   * @default public addresses only
   */
  egress?: EgressPolicy;
  /**
   * Reads a URL of the queue's own file store directly (uploads and earlier outputs), or returns undefined for any
   * other URL; see `FileStore.readByUrl`. Such files never go through the egress guard, which would refuse the
   * API's or the object store's private address.
   */
  readStoreFile?: (url: string) => Promise<FetchedInput | undefined>;
}

/** Fetches one input URL; rejects with {@link InputFetchError}, or with the signal's reason once it aborts. */
export type InputFetcher = (url: string, signal: AbortSignal) => Promise<FetchedInput>;

/** What RFC 2397 says a data URI without a media type holds. */
const DATA_URI_DEFAULT_TYPE = 'text/plain;charset=US-ASCII';
const BASE64_BODY = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Builds the fetcher behind {@link ModelContext.fetchInput}: `data:` URIs (base64 or percent-encoded)
 * and http(s) URLs, redirects followed, at most `maxBytes` bytes and `timeoutMs` milliseconds each.
 *
 * Every failure of the input itself is an {@link InputFetchError}. A cancelled request is not the
 * input's fault, so when `signal` aborts the promise rejects with the signal's own reason instead.
 */
export function createInputFetcher(options: InputFetcherOptions): InputFetcher {
  const fetchImpl = options.fetchImpl ?? createEgressFetch(options.egress ?? new EgressPolicy());
  return async (url, signal) => {
    signal.throwIfAborted();
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
    if (scheme === 'data') return decodeDataUri(url, options.maxBytes);
    if (scheme === 'http' || scheme === 'https') {
      const stored = await readStoreFile(url, options);
      if (stored) return stored;
      return fetchHttp(url, signal, options, fetchImpl);
    }
    throw new InputFetchError(
      scheme === undefined
        ? 'not a URL: expected an http(s) URL or a data URI'
        : `unsupported URL scheme "${scheme}:": expected an http(s) URL or a data URI`,
    );
  };
}

async function readStoreFile(url: string, options: InputFetcherOptions): Promise<FetchedInput | undefined> {
  if (!options.readStoreFile) return undefined;
  let file: FetchedInput | undefined;
  try {
    file = await options.readStoreFile(url);
  } catch (err) {
    // The URL names a file of our store that is not there: say so, without the URL (it may hold a signature).
    if ((err as Error).name === 'StoreFileMissingError') throw new InputFetchError((err as Error).message);
    throw err;
  }
  if (file) assertWithinLimit(file.data.length, options.maxBytes, 'the file store');
  return file;
}

function decodeDataUri(uri: string, maxBytes: number): FetchedInput {
  const comma = uri.indexOf(',');
  if (comma < 0) throw new InputFetchError('malformed data URI: no "," before the data');
  const meta = uri.slice('data:'.length, comma);
  const body = uri.slice(comma + 1);
  const isBase64 = /;base64$/i.test(meta);
  const mediaType = (isBase64 ? meta.slice(0, -';base64'.length) : meta).trim();
  const contentType = mediaType === '' || mediaType.startsWith(';') ? DATA_URI_DEFAULT_TYPE + mediaType : mediaType;

  let data: Buffer;
  if (isBase64) {
    // Clients wrap long base64 lines and some percent-encode '+', '/' or '='; both are harmless.
    const text = (body.includes('%') ? percentDecode(body).toString('latin1') : body).replace(/\s+/g, '');
    if (!BASE64_BODY.test(text) || text.length % 4 === 1) {
      throw new InputFetchError('malformed data URI: the payload is not valid base64');
    }
    // Checked before decoding so an oversized payload never gets a buffer of its own.
    const decodedLength = Math.floor((text.length * 3) / 4) - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0);
    assertWithinLimit(decodedLength, maxBytes, 'data URI');
    data = Buffer.from(text, 'base64');
  } else {
    data = percentDecode(body);
    assertWithinLimit(data.length, maxBytes, 'data URI');
  }
  return { data, contentType };
}

/** Decodes `%XX` escapes to bytes; other characters stand for their UTF-8 bytes. */
function percentDecode(text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== 0x25) {
      out[length++] = byte;
      continue;
    }
    const hex = raw.subarray(i + 1, i + 3).toString('latin1');
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      throw new InputFetchError('malformed data URI: "%" not followed by two hex digits');
    }
    out[length++] = parseInt(hex, 16);
    i += 2;
  }
  return out.subarray(0, length);
}

async function fetchHttp(
  url: string,
  signal: AbortSignal,
  options: InputFetcherOptions,
  fetchImpl: typeof fetch,
): Promise<FetchedInput> {
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch {
    throw new InputFetchError('malformed http(s) URL');
  }
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const combined = AbortSignal.any([signal, timeout]);

  // One handler for the request and the body: both can fail on the network, the timeout or the caller.
  const failure = (err: unknown): InputFetchError => {
    signal.throwIfAborted();
    if (err instanceof InputFetchError) return err;
    if (timeout.aborted) return new InputFetchError(`${origin} did not answer within ${options.timeoutMs} ms`);
    return new InputFetchError(`could not fetch from ${origin}: ${describeNetworkError(err)}`);
  };

  let response: Response;
  try {
    response = await fetchImpl(url, { signal: combined, redirect: 'follow' });
  } catch (err) {
    throw failure(err);
  }
  try {
    if (!response.ok) throw new InputFetchError(`${origin} answered HTTP ${response.status}`);
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared)) assertWithinLimit(declared, options.maxBytes, origin);
    const data = await readBounded(response, options.maxBytes, origin);
    return { data, contentType: response.headers.get('content-type') ?? 'application/octet-stream' };
  } catch (err) {
    // Frees the connection when we give up before reading the body (readBounded cancels its own reader).
    if (response.body && !response.body.locked) await response.body.cancel().catch(() => undefined);
    throw failure(err);
  }
}

/** Reads the body chunk by chunk so a lying or missing `content-length` cannot make us buffer more than `maxBytes`. */
async function readBounded(response: Response, maxBytes: number, origin: string): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      assertWithinLimit(total, maxBytes, origin);
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  }
  return Buffer.concat(chunks, total);
}

function assertWithinLimit(size: number, maxBytes: number, source: string): void {
  if (size > maxBytes) {
    throw new InputFetchError(`input from ${source} is larger than the ${maxBytes} bytes allowed`);
  }
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND, ...) is in `cause`. */
function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  // An egress refusal says which address and why; the code alone would not.
  if (cause?.code === 'EGRESS_REFUSED' && typeof cause.message === 'string') return cause.message;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}
