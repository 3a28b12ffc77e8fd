import { Router, type Request, type RequestHandler, type Response } from 'express';
import type { z } from 'zod';
import { jsonBody } from './json-body';
import type { RouteDoc } from './openapi';
import { validate, type RequestSchemas } from './validate';

/** What a route reads from a request, as the zod schemas that validate it and document it. */
export interface RouteRequest {
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  body?: {
    schema: z.ZodType;
    /** @default 'application/json' */
    contentType?: string;
    required?: boolean;
    /**
     * `'handler'`: the handler reads the body itself (a byte stream, or a JSON body it judges with
     * fal's own error shapes); the schema then only documents it.
     */
    readBy?: 'handler';
  };
}

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

/** The validated parts a handler receives, typed by its route's schemas. */
export interface RouteInput<R extends RouteRequest> {
  params: Parsed<R['params']>;
  query: Parsed<R['query']>;
  headers: Parsed<R['headers']>;
  body: R['body'] extends { readBy: 'handler' }
    ? unknown
    : R['body'] extends { schema: infer B }
      ? Parsed<B>
      : undefined;
}

/** One call of a route's handler: its validated input, the Express pair, and the app's dependencies. */
export interface RouteCall<D, R extends RouteRequest> extends RouteInput<R> {
  deps: D;
  req: Request;
  res: Response;
}

/**
 * One entry of the route table: how the route is documented in `/openapi.json` ({@link RouteDoc}) and
 * what answers it. The Express route and the OpenAPI operation are both made from this one object,
 * so neither can exist without the other.
 */
export interface ApiRoute<D, R extends RouteRequest = RouteRequest> extends Omit<RouteDoc, 'request'> {
  request?: R;
  /** Answers the request; a thrown error goes to the app's error middleware. */
  handle(call: RouteCall<D, R>): unknown;
}

/**
 * A route builder for handlers that need the dependencies `D`: `const route = routesWith<MyDeps>()`,
 * then `route({ method, route, ..., request, handle })`, with the handler's input typed by `request`.
 */
export function routesWith<D>() {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- a route without request schemas
  return <R extends RouteRequest = {}>(route: ApiRoute<D, R>): ApiRoute<D, R> => route;
}

/** Options for {@link mountRoutes}. */
export interface MountOptions {
  /** Largest JSON body a route with a JSON body parses. */
  maxBodyBytes: number;
}

/**
 * A router with every route of `routes`, in order: for each, its JSON body parser (routes with a
 * JSON body only), then `validate(...)` with its schemas, then its handler.
 */
export function mountRoutes<D>(routes: readonly ApiRoute<D>[], deps: D, options: MountOptions): Router {
  const router = Router();
  const parseJson = jsonBody(options.maxBodyBytes);
  for (const route of routes) {
    const { params, query, headers, body } = route.request ?? {};
    const schemas: RequestSchemas = { params, query, headers, body: body?.readBy ? undefined : body?.schema };
    const handlers: RequestHandler[] = [];
    if (body && (body.contentType ?? 'application/json') === 'application/json') handlers.push(...parseJson);
    handlers.push(validate(schemas), async (req, res) => {
      const valid = res.locals.valid as RouteInput<RouteRequest>;
      await route.handle({ ...valid, deps, req, res });
    });
    router[route.method](route.route, ...handlers);
  }
  return router;
}
