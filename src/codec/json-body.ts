import express, { type RequestHandler } from 'express';
import { parseJson } from './json';

/** What `express.json` would be given. */
export interface JsonBodyOptions {
  /** Largest body in bytes (413 `entity.too.large` beyond it). */
  limit: number;
  /** Content types parsed as JSON. */
  type: string[];
  /** Sees the raw bytes before they are decoded; throwing refuses the body (body-parser's `verify`). */
  verify?: (raw: Buffer) => void;
}

/**
 * `express.json()` with a lossless parser ({@link parseJson}): a model input's integers past 2^53, `-0` and long
 * decimals reach the backend as the client wrote them. Errors carry body-parser's `type`s
 * (`entity.parse.failed`, `entity.too.large`, ...) and statuses, so the error handler maps them as before. Like
 * body-parser's strict mode, only objects and arrays are accepted, and an empty body is `{}`.
 */
export function losslessJsonBody(options: JsonBodyOptions): RequestHandler[] {
  const { verify } = options;
  const text = express.text({
    limit: options.limit,
    type: options.type,
    defaultCharset: 'utf-8',
    ...(verify && { verify: (_req: unknown, _res: unknown, raw: Buffer) => verify(raw) }),
  });
  const parse: RequestHandler = (req, _res, next) => {
    const body: unknown = req.body;
    if (typeof body !== 'string' || !req.is(options.type)) return next();
    const trimmed = body.trimStart();
    if (trimmed === '') {
      req.body = {};
      return next();
    }
    if (trimmed[0] !== '{' && trimmed[0] !== '[') {
      return next(
        parseFailed(`Unexpected token ${JSON.stringify(trimmed[0])}: only a JSON object or array is accepted`),
      );
    }
    try {
      req.body = parseJson(body);
    } catch (err) {
      return next(parseFailed((err as Error).message));
    }
    next();
  };
  return [text, parse];
}

function parseFailed(message: string): Error {
  return Object.assign(new SyntaxError(message), { type: 'entity.parse.failed', status: 400, statusCode: 400 });
}
