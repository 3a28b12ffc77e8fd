import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler, Response } from 'express';
import pinoHttp from 'pino-http';
import type { Logger } from 'pino';

/** Probes and docs assets: polled all day, never worth an access log line. */
const QUIET = /^\/(healthz|readyz|metrics|openapi\.json|docs)(\/|$|\?)/;
const GIVEN_ID = /^[\w.:-]{1,128}$/;
const REQUEST_IN_PATH = /\/requests\/([^/?#]+)/;

/**
 * One access log line per API request, as JSON through the process logger: method, path (never the
 * query string or headers: webhook URLs and keys live there), status, duration, `req.id` (the
 * caller's `x-request-id` or a new one, echoed back) and `request_id`, the queue request it concerns
 * (from the route's response or its URL). Routes get a child logger with `req.id` as `req.log`.
 */
export function requestLogging(logger: Logger): RequestHandler {
  const http = pinoHttp({
    logger,
    genReqId(req, res) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && GIVEN_ID.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    autoLogging: { ignore: (req) => QUIET.test(req.url ?? '') },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    customProps: (req, res) => {
      const requestId = queueRequestIdOf(req, res);
      return requestId ? { request_id: requestId } : {};
    },
    serializers: {
      req: (req: { id: unknown; method: string; url: string }) => ({
        id: req.id,
        method: req.method,
        path: req.url.split('?')[0],
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
  return (req, res, next) => {
    captureRequestId(res);
    http(req, res, next);
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

function queueRequestIdOf(req: IncomingMessage, res: ServerResponse): string | undefined {
  const locals = (res as Partial<Response>).locals as { requestId?: unknown } | undefined;
  if (typeof locals?.requestId === 'string') return locals.requestId;
  const header = res.getHeader('x-fal-request-id');
  if (typeof header === 'string') return header;
  const inPath = REQUEST_IN_PATH.exec((req as { originalUrl?: string }).originalUrl ?? req.url ?? '');
  if (!inPath) return undefined;
  try {
    return decodeURIComponent(inPath[1]!);
  } catch {
    return inPath[1];
  }
}
