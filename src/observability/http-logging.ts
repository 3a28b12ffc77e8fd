import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

/** Probes and docs assets: polled all day, never worth an access log line. */
const QUIET = /^\/(healthz|readyz|metrics|openapi\.json|docs)(\/|$|\?)/;
const GIVEN_ID = /^[\w.:-]{1,128}$/;
const REQUEST_IN_PATH = /\/requests\/([^/?#]+)/;

/**
 * One access log line per API request, as JSON through the process logger: method, path (never the
 * query string or headers: webhook URLs and keys live there), status, duration, `req.id` (the
 * caller's `x-request-id` or a new one, echoed back) and `request_id`, the queue request it concerns
 * (from the route's response or its URL).
 *
 * One logger call when the response ends, and nothing else per request: pino-http, which this
 * replaced, built two or three child loggers per request (serializing the request each time), and
 * cost a submit about 0.2 ms of CPU on the 2-core VM (docs/performance.md, `--api-overhead`).
 */
export function requestLogging(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && GIVEN_ID.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', id);
    if (QUIET.test(req.url)) return next();
    const startedAt = Date.now();
    captureRequestId(res);
    // 'close' comes after 'finish' for an answer sent in full, and alone for a client that went away first.
    res.once('close', () => {
      const completed = res.writableFinished;
      const failed = res.statusCode >= 500;
      const requestId = queueRequestIdOf(req, res);
      logger[failed ? 'error' : 'info'](
        {
          req: { id, method: req.method, path: req.originalUrl.split('?')[0] },
          res: { statusCode: res.statusCode },
          responseTime: Date.now() - startedAt,
          ...(requestId && { request_id: requestId }),
        },
        !completed ? 'request aborted' : failed ? 'request errored' : 'request completed',
      );
    });
    next();
  };
}

/** Remembers the `request_id` of a JSON answer (submit, status) for the access log. */
function captureRequestId(res: Response): void {
  const json = res.json.bind(res);
  res.json = (body: unknown) => {
    const id = (body as { request_id?: unknown } | null)?.request_id;
    if (typeof id === 'string' && res.locals.requestId === undefined) res.locals.requestId = id;
    return json(body);
  };
}

function queueRequestIdOf(req: Request, res: Response): string | undefined {
  const { requestId } = res.locals as { requestId?: unknown };
  if (typeof requestId === 'string') return requestId;
  const header = res.getHeader('x-fal-request-id');
  if (typeof header === 'string') return header;
  const inPath = REQUEST_IN_PATH.exec(req.originalUrl);
  if (!inPath) return undefined;
  try {
    return decodeURIComponent(inPath[1]!);
  } catch {
    return inPath[1];
  }
}
