import type { Request, Response } from 'express';
import { QueueFullError } from '../../client/admission-client';
import type { RequestsClient, RequestView, SubmitResult } from '../../client/requests';
import { QueueStatus } from '../../workflows/shared/request';
import type { ModelRegistry } from '../../models/registry';
import { ownerOf } from '../auth';
import { HttpError } from '../http-error';
import { sendResult } from '../result-body';
import {
  commonErrors,
  finishedResult,
  ModelIdParams,
  RequestIdParams,
  requestLinks,
  statusRequest,
  submitRequest,
} from '../route-docs';
import { routesWith } from '../route';
import { CancelAccepted, CancelNotFound, CancelRejected, StatusResponse, SubmitResponse } from '../response-schemas';
import { SubmitBody, type RequestParams, type SubmitHeaders, type SubmitQuery } from '../schemas';
import { appIdOf, baseUrlOf, requestUrls, statusBody } from '../status-body';

export interface QueueRouteDeps {
  requests: RequestsClient;
  registry: ModelRegistry;
  /** Base URL for the URLs we hand out; undefined = how this request reached us. */
  publicBaseUrl?: string;
}

const route = routesWith<QueueRouteDeps>();

const submitErrors = commonErrors(400, 401, 404, 413, 415, 422, 429, 503);

/** Queues the request and answers with its id and URLs, as fal's submit does. */
async function submit(
  deps: QueueRouteDeps,
  req: Request,
  res: Response,
  modelId: string,
  options: { query: SubmitQuery; headers: SubmitHeaders },
): Promise<void> {
  const { requestId, queuePosition } = await startRequest(deps.requests, req, res, modelId, options);
  res.json({
    status: QueueStatus.InQueue,
    request_id: requestId,
    ...requestUrls(baseUrlOf(req, deps.publicBaseUrl), appIdOf(modelId), requestId),
    queue_position: queuePosition,
  });
}

/**
 * fal's queue API: submit, status, result, cancel, and the seed's legacy gateway submit. The generic
 * submit comes last in the table: it would read the other POST routes' paths as model ids.
 */
export const legacySubmitRoutes = [
  route({
    method: 'post',
    route: '/fal/queue/submit',
    summary: "Submit in fal's legacy gateway form (runs the models file's `legacySubmitModel`)",
    tags: ['queue'],
    auth: true,
    request: submitRequest,
    responses: { 200: { description: 'Queued', schema: SubmitResponse }, ...submitErrors },
    async handle({ deps, req, res, query, headers }) {
      const modelId = deps.registry.legacySubmitModel;
      if (!modelId) throw HttpError.notFound('No model is configured for the legacy submit route (legacySubmitModel)');
      await submit(deps, req, res, modelId, { query, headers });
    },
  }),
];

/** Status, result and cancel of a submitted request. */
export const requestRoutes = [
  route({
    method: 'get',
    route: '/:owner/:app/requests/:requestId/status',
    summary: "A request's status",
    tags: ['queue'],
    auth: true,
    request: statusRequest,
    responses: {
      ...commonErrors(401, 404, 422, 503),
      200: { description: 'COMPLETED', schema: StatusResponse },
      202: { description: 'IN_QUEUE or IN_PROGRESS', schema: StatusResponse },
    },
    async handle({ deps, req, res, params, query }) {
      const view = await findRequest(deps.requests, params, res, {}, { logs: query.logs });
      const base = baseUrlOf(req, deps.publicBaseUrl);
      const body = statusBody(view, base, query.logs);
      res.status(view.status === QueueStatus.Completed ? 200 : 202).json(body);
    },
  }),
  route({
    method: 'get',
    route: '/:owner/:app/requests/:requestId',
    summary: "A finished request's result",
    tags: ['queue'],
    auth: true,
    request: { params: RequestIdParams },
    responses: { ...finishedResult, ...commonErrors(401, 404, 503), 422: finishedResult[422] },
    async handle({ deps, res, params }) {
      const view = await findRequest(deps.requests, params, res);
      if (view.status !== QueueStatus.Completed) throw new HttpError(400, { detail: 'Request is still in progress' });
      sendResult(res, view.requestId, view.outcome);
    },
  }),
  route({
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
      ...commonErrors(401, 422, 503),
    },
    async handle({ deps, res, params }) {
      const view = await findRequest(deps.requests, params, res, { status: 'NOT_FOUND' });
      if (view.status === QueueStatus.Completed) throw new HttpError(400, { status: 'ALREADY_COMPLETED' });
      await deps.requests.cancel(view.requestId);
      res.status(202).json({ status: 'CANCELLATION_REQUESTED' });
    },
  }),
];

/** `POST /{owner}/{app}[/{path}]`: last of all POST routes, whose paths it would take for model ids. */
export const submitRoutes = [
  route({
    method: 'post',
    route: '/:owner/:app{/*path}',
    summary: 'Submit a request to a model',
    description: 'Queues the input for the model `owner/app[/path]`; `fal_webhook` is called when it is done.',
    tags: ['queue'],
    auth: true,
    request: { params: ModelIdParams, ...submitRequest },
    responses: { 200: { description: 'Queued', schema: SubmitResponse, links: requestLinks }, ...submitErrors },
    async handle({ deps, req, res, params, query, headers }) {
      const modelId = [params.owner, params.app, ...(params.path ?? [])].join('/');
      if (!deps.registry.get(modelId)) throw HttpError.notFound(`Model ${modelId} not found`);
      await submit(deps, req, res, modelId, { query, headers });
    },
  }),
];

/**
 * Starts a request from a submit's HTTP request — the queue routes and the synchronous run alike:
 * the body is the input, the headers ({@link SubmitHeaders}) its options, the query (queue routes
 * only) its webhook and queue bound.
 */
export async function startRequest(
  requests: RequestsClient,
  req: Request,
  res: Response,
  modelId: string,
  options: { headers: SubmitHeaders; query?: SubmitQuery },
): Promise<SubmitResult> {
  const input = jsonObjectBody(req);
  const { headers, query } = options;
  try {
    return await requests.submit({
      owner: ownerOf(res),
      modelId,
      input,
      webhookUrl: query?.fal_webhook,
      idempotencyKey: headers['idempotency-key'],
      fileExpiresInSeconds: headers['x-fal-object-lifecycle-preference']?.expiration_duration_seconds,
      priority: headers['x-fal-queue-priority'],
      startTimeoutSeconds: headers['x-fal-request-timeout'],
      noRetry: headers['x-fal-no-retry'],
      maxQueueLength: query?.fal_max_queue_length,
    });
  } catch (err) {
    if (err instanceof QueueFullError) throw new HttpError(429, { detail: err.message });
    throw err;
  }
}

/** The caller's request under this app, or a 404 that does not reveal whether it exists for someone else. */
export async function findRequest(
  requests: RequestsClient,
  params: RequestParams,
  res: Response,
  notFoundExtra: Record<string, unknown> = {},
  options: { logs?: boolean } = {},
): Promise<RequestView> {
  const view = await requests.get(params.requestId, ownerOf(res), options);
  if (!view || appIdOf(view.modelId) !== `${params.owner}/${params.app}`) {
    throw HttpError.notFound('Request not found', notFoundExtra);
  }
  return view;
}

/**
 * The model input: a JSON object. An empty body counts as `{}`; any other content type is refused
 * rather than guessed at.
 */
function jsonObjectBody(req: Request): Record<string, unknown> {
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  if (!hasBody) return {};
  if (!req.is(['application/json', 'application/*+json'])) {
    throw new HttpError(415, {
      detail: `Content-Type must be application/json, got ${req.get('content-type') ?? 'none'}`,
    });
  }
  const parsed = SubmitBody.safeParse(req.body);
  if (!parsed.success) {
    throw new HttpError(422, {
      detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }],
    });
  }
  return parsed.data;
}
