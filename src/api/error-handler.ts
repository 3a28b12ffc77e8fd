import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { HttpError } from './http-error';
import { TOO_DEEP } from './json-body';

/** body-parser's error types, which are all the client's doing. */
const BODY_ERRORS: Record<string, (err: { limit?: number; message: string }) => HttpError> = {
  'entity.parse.failed': (err) => new HttpError(400, { detail: `Malformed JSON body: ${err.message}` }),
  'entity.too.large': (err) =>
    new HttpError(413, { detail: `Request body is larger than the limit of ${err.limit} bytes` }),
  'entity.verify.failed': (err) => new HttpError(400, { detail: err.message }),
  [TOO_DEEP]: (err) =>
    new HttpError(422, { detail: [{ loc: ['body'], msg: err.message, type: 'value_error.jsondepth' }] }),
  'request.aborted': () => new HttpError(400, { detail: 'Request aborted while the body was read' }),
  'request.size.invalid': () => new HttpError(400, { detail: 'Request body size does not match Content-Length' }),
  'charset.unsupported': (err) => new HttpError(415, { detail: err.message }),
  'encoding.unsupported': (err) => new HttpError(415, { detail: err.message }),
  'stream.encoding.set': () => new HttpError(500, { detail: 'Internal error' }),
};

/**
 * The one place errors become responses: typed errors map to their status and fal's JSON shapes;
 * anything else is our fault, logged, and answered with a 500 that leaks nothing.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const type = (err as { type?: unknown })?.type;
    const mapped =
      err instanceof HttpError
        ? err
        : typeof type === 'string' && BODY_ERRORS[type]
          ? BODY_ERRORS[type](err as { limit?: number; message: string })
          : (err as { name?: unknown })?.name === 'PayloadTooLargeError'
            ? new HttpError(413, { detail: (err as Error).message })
            : isTemporalUnavailable(err)
              ? new HttpError(503, { detail: 'The queue backend (Temporal) is unavailable; try again shortly' })
              : undefined;
    // The path only: query strings carry secrets (`fal_webhook` URLs, upload `?token=`).
    if (!mapped || mapped.status >= 500) logger.error({ err, method: req.method, path: req.path }, 'request failed');
    const error = mapped ?? new HttpError(500, { detail: 'Internal server error' });
    res.status(error.status).set(error.headers).json(error.body);
  };
}

function isTemporalUnavailable(err: unknown): boolean {
  const name = (err as { name?: unknown })?.name;
  const code = (err as { code?: unknown })?.code;
  // gRPC UNAVAILABLE (14) and DEADLINE_EXCEEDED (4) mean the cluster did not answer, not that we failed.
  return name === 'ServiceError' || name === 'ConnectionError' || code === 14 || code === 4;
}
