import { z } from 'zod';
import {
  createDocument,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponsesObject,
  type oas31,
} from 'zod-openapi';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One answer of a route: its description and, for a body, the zod schema it follows. */
export interface ResponseDoc {
  description: string;
  schema?: z.ZodType;
  /** @default 'application/json' */
  contentType?: string;
  /**
   * OpenAPI links: operations this answer's values feed, e.g. the request id of a submit into its
   * status route (`{ operationId, parameters: { requestId: '$response.body#/request_id' } }`).
   */
  links?: Record<string, { operationId: string; parameters: Record<string, string> }>;
}

/**
 * How one live route is documented. The request schemas are the very zod schemas the route
 * validates with (`validate({ params, query, headers, body })`), imported from where they live.
 */
export interface RouteDoc {
  method: HttpMethod;
  /** The Express path exactly as the route registers it, e.g. `/:owner/:app/requests/:requestId`. */
  route: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Whether it needs `Authorization: Key <key_id>:<key_secret>`. */
  auth: boolean;
  request?: {
    params?: z.ZodObject;
    query?: z.ZodObject;
    headers?: z.ZodObject;
    body?: { schema: z.ZodType; contentType?: string; required?: boolean };
  };
  responses: Record<number, ResponseDoc>;
}

/** One OpenAPI path of an Express path: optional groups give one each, `:name` and `*name` become `{name}`. */
export interface OpenApiPath {
  path: string;
  params: string[];
  /** `*name` parameters: one or more segments in Express, one string in OpenAPI. */
  wildcards: string[];
}

/** The OpenAPI paths an Express 5 path (path-to-regexp 8 syntax) stands for. */
export function openApiPathsOf(route: string): OpenApiPath[] {
  const group = /\{([^{}]*)\}/.exec(route);
  if (group) {
    const before = route.slice(0, group.index);
    const after = route.slice(group.index + group[0].length);
    return [...openApiPathsOf(before + after), ...openApiPathsOf(before + group[1] + after)];
  }
  const params: string[] = [];
  const wildcards: string[] = [];
  const path = route.replace(/([:*])(\w+)/g, (_, kind: string, name: string) => {
    params.push(name);
    if (kind === '*') wildcards.push(name);
    return `{${name}}`;
  });
  return [{ path: path || '/', params, wildcards }];
}

export interface OpenApiOptions {
  title?: string;
  version: string;
  description?: string;
}

/**
 * The OpenAPI 3.1 document of `routes`, generated from their zod schemas (input shapes for requests,
 * output shapes for responses) by zod-openapi.
 */
export function buildOpenApiDocument(routes: readonly RouteDoc[], options: OpenApiOptions): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const doc of routes) {
    for (const variant of openApiPathsOf(doc.route)) {
      const item = (paths[variant.path] ??= {});
      if (item[doc.method]) throw new Error(`${doc.method.toUpperCase()} ${variant.path} is documented twice`);
      item[doc.method] = operationOf(doc, variant);
    }
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: options.title ?? 'fal-queue-temporal',
      version: options.version,
      description: options.description,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    paths,
    components: {
      securitySchemes: {
        falKey: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description: "fal's key header: `Authorization: Key <key_id>:<key_secret>`",
        },
      },
    },
  });
}

function operationOf(doc: RouteDoc, variant: OpenApiPath): ZodOpenApiOperationObject {
  const { request = {} } = doc;
  const responses: ZodOpenApiResponsesObject = {};
  for (const [status, response] of Object.entries(doc.responses)) {
    responses[status as `${1 | 2 | 3 | 4 | 5}${string}`] = {
      description: response.description,
      ...(response.links && { links: response.links }),
      ...(response.schema && {
        content: { [response.contentType ?? 'application/json']: { schema: response.schema } },
      }),
    };
  }
  return {
    operationId: operationIdOf(doc, variant),
    summary: doc.summary,
    description: doc.description,
    tags: doc.tags,
    security: doc.auth ? [{ falKey: [] }] : [],
    requestParams: {
      ...(variant.params.length > 0 && { path: pathParamsOf(request.params, variant) }),
      ...(request.query && { query: request.query }),
      ...(request.headers && { header: request.headers }),
    },
    ...(request.body && {
      requestBody: {
        required: request.body.required ?? false,
        content: { [request.body.contentType ?? 'application/json']: { schema: request.body.schema } },
      },
    }),
    responses,
  };
}

/**
 * The route's params schema, narrowed to this variant's parameters. A wildcard (`*path`, an array
 * in Express) is documented as one string, its element's schema.
 */
function pathParamsOf(params: z.ZodObject | undefined, variant: OpenApiPath): z.ZodObject {
  if (!params) throw new Error(`${variant.path}: path parameters are undocumented; give request.params`);
  const shape: Record<string, z.ZodType> = {};
  for (const name of variant.params) {
    const schema = params.shape[name] as z.ZodType | undefined;
    if (!schema) throw new Error(`${variant.path}: request.params has no "${name}"`);
    shape[name] = variant.wildcards.includes(name) ? elementOf(schema) : schema;
  }
  return z.object(shape);
}

function elementOf(schema: z.ZodType): z.ZodType {
  let inner = schema as z.ZodType & { unwrap?: () => z.ZodType; element?: z.ZodType };
  while (inner.unwrap && !inner.element) inner = inner.unwrap() as typeof inner;
  const element = inner.element ?? schema;
  return element.meta({ description: 'further path segments (`a/b` is sent as two segments)' });
}

/** The `operationId` of a route's OpenAPI path: method and path words, e.g. `getOwnerAppRequestsRequestIdStatus`. */
export function operationIdOf(doc: Pick<RouteDoc, 'method'>, variant: Pick<OpenApiPath, 'path'>): string {
  const words = variant.path
    .split('/')
    .filter(Boolean)
    .map((segment) => segment.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+/g, ' '))
    .join(' ')
    .split(' ')
    .filter(Boolean);
  return [doc.method, ...words].map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
}
