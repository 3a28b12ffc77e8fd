import type { RequestHandler } from 'express';
import { losslessJsonBody } from '../codec/json-body';

/**
 * Deepest nesting of arrays and objects a JSON body may have. Far beyond any model input, and far
 * below what breaks the stack: a 20 KB body of 10,000 `[` parses, but serialising it for Temporal
 * then throws (a 500), so it is refused before it is parsed.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * The JSON body parser of routes with a JSON body: size-limited, depth-limited, and lossless (a model input's
 * integers past 2^53, `-0` and long decimals reach the backend as the client wrote them).
 */
export function jsonBody(maxBytes: number): RequestHandler[] {
  return losslessJsonBody({
    limit: maxBytes,
    type: ['application/json', 'application/*+json'],
    // body-parser calls this with the raw bytes before the parser sees them.
    verify: (raw) => assertJsonDepth(raw, MAX_JSON_DEPTH),
  });
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x5b, 0x7b]);
const CLOSERS = new Set([0x5d, 0x7d]);

/** body-parser's error `type` for a body nested too deep; the error middleware answers 422. */
export const TOO_DEEP = 'entity.too.deep';

/**
 * Throws (an error of type {@link TOO_DEEP}) when the JSON text nests arrays and objects deeper than `max`. One pass over the bytes,
 * skipping strings; malformed text is left for the parser to report.
 */
export function assertJsonDepth(raw: Uint8Array, max: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (OPENERS.has(byte)) {
      if (++depth > max) {
        // Not an HttpError: body-parser copies its own `body` (the raw text) onto what is thrown.
        throw Object.assign(new Error(`JSON nested deeper than ${max} levels`), { type: TOO_DEEP });
      }
    } else if (CLOSERS.has(byte)) {
      depth--;
    }
  }
}
