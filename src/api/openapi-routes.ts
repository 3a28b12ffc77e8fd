/**
 * The documentation of every live route, from which `/openapi.json` is generated.
 *
 * To document a route: add one entry below with the route's Express path exactly as registered,
 * the zod schemas its `validate(...)` uses (import them from where they live, e.g. `./schemas`), and
 * the schemas of its answers (`./response-schemas`, or your own module). `test/ops/openapi.test.ts`
 * walks the app's router and fails while a live route has no entry here (or an entry no route).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { buildOpenApiDocument, operationIdOf, type ResponseDoc, type RouteDoc } from './openapi';
import {
  CancelAccepted,
  CancelNotFound,
  CancelRejected,
  ErrorBody,
  Health,
  Liveness,
  Jwks,
  ModelOutput,
  NotReady,
  RedeliveryAccepted,
  ResultErrorBody,
  StatusEvent,
  StatusResponse,
  StoredFile,
  SubmitResponse,
  UploadInitiated,
  ValidationErrorBody,
  WebhookDeliveryLog,
  WebhookSecret,
} from './response-schemas';
import {
  FileParams,
  RequestParams,
  StatusQuery,
  SubmitBody,
  SubmitHeaders,
  SubmitParams,
  SubmitQuery,
  UploadHeaders,
  UploadInitiateBody,
  UploadParams,
  UploadQuery,
} from './schemas';

const error = (description: string): ResponseDoc => ({ description, schema: ErrorBody });

/** The answers any route may give for the reason named. */
const E = {
  400: error('Malformed request (e.g. a JSON body that does not parse)'),
  401: error('Missing or invalid `Authorization: Key <key_id>:<key_secret>`'),
  404: error('No such model, request or route (another owner\'s request is "not found" too)'),
  413: error('Body larger than allowed'),
  415: error('Content type other than JSON'),
  422: { description: "Invalid fields, in pydantic's shape", schema: ValidationErrorBody } satisfies ResponseDoc,
  429: error("The model's queue is full (`fal_max_queue_length` or the model's bound)"),
  503: error('Temporal is unreachable; try again shortly'),
};
const pick = (...codes: (keyof typeof E)[]) => Object.fromEntries(codes.map((c) => [c, E[c]]));

// The same schemas, with examples (the docs page pre-fills them; schemathesis tries them first).
const ModelIdParams = SubmitParams.extend({
  owner: SubmitParams.shape.owner.meta({ example: 'fal-ai' }),
  app: SubmitParams.shape.app.meta({ example: 'lora' }),
});
const RequestIdParams = RequestParams.extend({
  owner: RequestParams.shape.owner.meta({ example: 'fal-ai' }),
  app: RequestParams.shape.app.meta({ example: 'lora' }),
  requestId: RequestParams.shape.requestId.meta({ example: '024ca5b1-45d3-4afd-883e-ad3abe2a1c4d' }),
});
const submitRequest = {
  query: SubmitQuery,
  headers: SubmitHeaders,
  body: {
    schema: SubmitBody.meta({
      description: "The model's input",
      example: { model_name: 'stabilityai/stable-diffusion-xl-base-1.0', prompt: 'Photo of a cute dog' },
    }),
  },
};
const finishedResult = {
  200: { description: "The model's output", schema: ModelOutput },
  400: {
    description: 'Still in progress (`detail`), or cancelled (`error_type: cancelled`)',
    schema: ErrorBody.or(ResultErrorBody),
  },
  422: {
    description: 'Invalid path or headers, or the model refused its input (`error_type: validation_error`)',
    schema: z.union([ValidationErrorBody, ResultErrorBody]),
  },
  500: { description: 'The runner failed (`runner_error`, `backend_not_configured`)', schema: ResultErrorBody },
  504: { description: 'The run timed out (`request_timeout`)', schema: ResultErrorBody },
} satisfies Record<number, ResponseDoc>;

/** The routes a submitted request's id opens, linked from the submit's answer (schemathesis follows them). */
const requestLinks: ResponseDoc['links'] = Object.fromEntries(
  (
    [
      ['get', '/{owner}/{app}/requests/{requestId}/status'],
      ['get', '/{owner}/{app}/requests/{requestId}/status/stream'],
      ['get', '/{owner}/{app}/requests/{requestId}'],
      ['put', '/{owner}/{app}/requests/{requestId}/cancel'],
      ['get', '/{owner}/{app}/requests/{requestId}/webhook'],
      ['post', '/{owner}/{app}/requests/{requestId}/webhook/redeliver'],
    ] as const
  ).map(([method, path]) => {
    const operationId = operationIdOf({ method }, { path });
    return [
      operationId,
      {
        operationId,
        parameters: { owner: '$request.path.owner', app: '$request.path.app', requestId: '$response.body#/request_id' },
      },
    ];
  }),
);

export const apiRoutes: RouteDoc[] = [
  // Operations
  {
    method: 'get',
    route: '/healthz',
    summary: 'Liveness: the process is up',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'Up, with the version serving', schema: Liveness } },
  },
  {
    method: 'get',
    route: '/readyz',
    summary: 'Readiness: Temporal answers for our namespace',
    tags: ['operations'],
    auth: false,
    responses: {
      200: { description: 'Ready', schema: Health },
      503: { description: 'Temporal is unreachable', schema: NotReady },
    },
  },
  {
    method: 'get',
    route: '/metrics',
    summary: 'Prometheus metrics',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'Text exposition format', schema: z.string(), contentType: 'text/plain' } },
  },
  {
    method: 'get',
    route: '/openapi.json',
    summary: 'This document',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
  },
  {
    method: 'get',
    route: '/docs',
    summary: 'Interactive API documentation (Swagger UI, served from this process)',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'HTML page', schema: z.string(), contentType: 'text/html' } },
  },

  // Queue
  {
    method: 'post',
    route: '/:owner/:app{/*path}',
    summary: 'Submit a request to a model',
    description: 'Queues the input for the model `owner/app[/path]`; `fal_webhook` is called when it is done.',
    tags: ['queue'],
    auth: true,
    request: { params: ModelIdParams, ...submitRequest },
    responses: {
      200: { description: 'Queued', schema: SubmitResponse, links: requestLinks },
      ...pick(400, 401, 404, 413, 415, 422, 429, 503),
    },
  },
  {
    method: 'post',
    route: '/fal/queue/submit',
    summary: "Submit in fal's legacy gateway form (runs the models file's `legacySubmitModel`)",
    tags: ['queue'],
    auth: true,
    request: submitRequest,
    responses: {
      200: { description: 'Queued', schema: SubmitResponse },
      ...pick(400, 401, 404, 413, 415, 422, 429, 503),
    },
  },
  {
    method: 'get',
    route: '/:owner/:app/requests/:requestId/status',
    summary: "A request's status",
    tags: ['queue'],
    auth: true,
    request: { params: RequestIdParams, query: StatusQuery },
    responses: {
      200: { description: 'COMPLETED', schema: StatusResponse },
      202: { description: 'IN_QUEUE or IN_PROGRESS', schema: StatusResponse },
      ...pick(401, 404, 422, 503),
    },
  },
  {
    method: 'get',
    route: '/:owner/:app/requests/:requestId/status/stream',
    summary: "A request's status as Server-Sent Events, until it is COMPLETED",
    tags: ['queue'],
    auth: true,
    request: { params: RequestIdParams, query: StatusQuery },
    responses: {
      200: {
        description: 'One `data:` event (a status body) per change, with the log lines not sent before',
        schema: StatusEvent,
        contentType: 'text/event-stream',
      },
      ...pick(401, 404, 422, 503),
    },
  },
  {
    method: 'get',
    route: '/:owner/:app/requests/:requestId',
    summary: "A finished request's result",
    tags: ['queue'],
    auth: true,
    request: { params: RequestIdParams },
    responses: { ...finishedResult, ...pick(401, 404, 503), 422: finishedResult[422] },
  },
  {
    method: 'put',
    route: '/:owner/:app/requests/:requestId/cancel',
    summary: 'Cancel a request',
    tags: ['queue'],
    auth: true,
    request: { params: RequestIdParams },
    responses: {
      202: { description: 'Cancellation requested', schema: CancelAccepted },
      400: { description: 'Already completed', schema: CancelRejected },
      404: { description: 'No such request', schema: CancelNotFound },
      ...pick(401, 422, 503),
    },
  },
  {
    method: 'post',
    route: '/run/:owner/:app{/*path}',
    summary: 'Run synchronously (fal.run): queue, wait, answer with the result',
    tags: ['queue'],
    auth: true,
    request: { params: ModelIdParams, headers: SubmitHeaders, body: submitRequest.body },
    responses: { ...finishedResult, ...pick(401, 404, 413, 415, 429), 422: finishedResult[422], 503: E[503] },
  },

  // Webhooks
  {
    method: 'get',
    route: '/:owner/:app/requests/:requestId/webhook',
    summary: "A request's webhook delivery log",
    tags: ['webhooks'],
    auth: true,
    request: { params: RequestIdParams },
    responses: { 200: { description: 'Every attempt', schema: WebhookDeliveryLog }, ...pick(401, 404, 422, 503) },
  },
  {
    method: 'post',
    route: '/:owner/:app/requests/:requestId/webhook/redeliver',
    summary: "Send a request's webhook once more",
    tags: ['webhooks'],
    auth: true,
    request: { params: RequestIdParams },
    responses: {
      202: { description: 'Redelivery requested', schema: RedeliveryAccepted },
      ...pick(401, 404, 422, 503),
    },
  },
  {
    method: 'get',
    route: '/webhooks/secret',
    summary: "The caller's Standard Webhooks secret (verifies `webhook-signature`)",
    tags: ['webhooks'],
    auth: true,
    responses: { 200: { description: 'The secret', schema: WebhookSecret }, ...pick(401) },
  },
  {
    method: 'get',
    route: '/.well-known/jwks.json',
    summary: "Public keys of fal's webhook signatures (`x-fal-webhook-signature`)",
    tags: ['webhooks'],
    auth: false,
    responses: { 200: { description: 'JWKS', schema: Jwks } },
  },

  // Files
  {
    method: 'get',
    route: '/files/:fileId/:fileName',
    summary: 'A stored file (model output or upload)',
    tags: ['files'],
    auth: false,
    request: { params: FileParams },
    responses: {
      200: { description: 'The file', schema: z.string().meta({ format: 'binary' }), contentType: '*/*' },
      ...pick(404),
    },
  },
  {
    method: 'post',
    route: '/storage/upload/initiate',
    summary: 'Reserve an upload: answers the URL to PUT the bytes to and the URL the file will have',
    tags: ['files'],
    auth: true,
    request: { headers: UploadHeaders, body: { schema: UploadInitiateBody } },
    responses: { 200: { description: 'Reserved', schema: UploadInitiated }, ...pick(400, 401, 413, 415, 422) },
  },
  {
    method: 'post',
    route: '/storage/upload/initiate-multipart',
    summary: 'Multipart uploads are not offered: always 413',
    tags: ['files'],
    auth: true,
    responses: pick(401, 413),
  },
  {
    method: 'put',
    route: '/storage/upload/:fileId',
    summary: 'Upload the bytes of a reserved file (the `token` is the capability; no key)',
    tags: ['files'],
    auth: false,
    request: {
      params: UploadParams,
      query: UploadQuery,
      body: { schema: z.string().meta({ format: 'binary' }), contentType: 'application/octet-stream' },
    },
    responses: {
      200: { description: 'Stored', schema: StoredFile },
      409: error('Already uploaded'),
      ...pick(404, 413, 422),
    },
  },
];

let document: object | undefined;

/** `/openapi.json`: {@link apiRoutes} as OpenAPI 3.1, built once per process. */
export function apiDocument(): object {
  document ??= buildOpenApiDocument(apiRoutes, {
    version: packageVersion(),
    description:
      'A self-hosted, fal.ai-compatible inference request queue with webhooks, on Temporal. Send `Authorization: Key <key_id>:<key_secret>` on every route marked with a lock.',
  });
  return document;
}

function packageVersion(): string {
  try {
    // src/api or dist/api: the package root is two levels up either way.
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
}
