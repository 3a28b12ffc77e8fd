import { Router, type Request, type Response } from 'express';
import { QueueFullError } from '../../client/admission-client';
import type { RequestsClient, RequestView, SubmitResult } from '../../client/requests';
import { QueueStatus } from '../../workflows/shared/request';
import type { ModelRegistry } from '../../models/registry';
import { ownerOf } from '../auth';
import { HttpError } from '../http-error';
import { sendResult } from '../result-body';
import { RequestParams, StatusQuery, SubmitBody, SubmitHeaders, SubmitParams, SubmitQuery } from '../schemas';
import { appIdOf, requestUrls, statusBody } from '../status-body';
import { validate, validated } from '../validate';

export interface QueueRouteDeps {
  requests: RequestsClient;
  registry: ModelRegistry;
  /** Base URL for the URLs we hand out; undefined = how this request reached us. */
  publicBaseUrl?: string;
}

/** fal's queue API: submit, status, result, cancel, and the seed's legacy gateway submit. */
export function queueRoutes(deps: QueueRouteDeps): Router {
  const router = Router();
  const baseOf = (req: Request) => deps.publicBaseUrl ?? `${req.protocol}://${req.get('host')}`;

  const submit = async (req: Request, res: Response, modelId: string, webhookUrl: string | undefined) => {
    const { requestId, queuePosition } = await startRequest(deps.requests, req, res, modelId, webhookUrl);
    res.json({
      status: QueueStatus.InQueue,
      request_id: requestId,
      ...requestUrls(baseOf(req), appIdOf(modelId), requestId),
      queue_position: queuePosition,
    });
  };

  // Registered before the generic submit route, which would otherwise read it as model "fal/queue/submit".
  const legacy = { query: SubmitQuery, headers: SubmitHeaders };
  router.post('/fal/queue/submit', validate(legacy), async (req, res) => {
    const modelId = deps.registry.legacySubmitModel;
    if (!modelId) throw HttpError.notFound('No model is configured for the legacy submit route (legacySubmitModel)');
    await submit(req, res, modelId, validated(res, legacy).query.fal_webhook);
  });

  const submitSchemas = { params: SubmitParams, query: SubmitQuery, headers: SubmitHeaders };
  router.post('/:owner/:app{/*path}', validate(submitSchemas), async (req, res) => {
    const { params, query } = validated(res, submitSchemas);
    const modelId = [params.owner, params.app, ...(params.path ?? [])].join('/');
    if (!deps.registry.get(modelId)) throw HttpError.notFound(`Model ${modelId} not found`);
    await submit(req, res, modelId, query.fal_webhook);
  });

  const statusSchemas = { params: RequestParams, query: StatusQuery };
  router.get('/:owner/:app/requests/:requestId/status', validate(statusSchemas), async (req, res) => {
    const { params, query } = validated(res, statusSchemas);
    const view = await findRequest(deps.requests, params, res, {}, { logs: query.logs });
    res.status(view.status === QueueStatus.Completed ? 200 : 202).json(statusBody(view, baseOf(req), query.logs));
  });

  const resultSchemas = { params: RequestParams };
  router.get('/:owner/:app/requests/:requestId', validate(resultSchemas), async (_req, res) => {
    const { params } = validated(res, resultSchemas);
    const view = await findRequest(deps.requests, params, res);
    if (view.status !== QueueStatus.Completed) throw new HttpError(400, { detail: 'Request is still in progress' });
    sendResult(res, view.requestId, view.outcome);
  });

  router.put('/:owner/:app/requests/:requestId/cancel', validate(resultSchemas), async (_req, res) => {
    const { params } = validated(res, resultSchemas);
    const view = await findRequest(deps.requests, params, res, { status: 'NOT_FOUND' });
    if (view.status === QueueStatus.Completed) throw new HttpError(400, { status: 'ALREADY_COMPLETED' });
    await deps.requests.cancel(view.requestId);
    res.status(202).json({ status: 'CANCELLATION_REQUESTED' });
  });

  return router;
}

/**
 * Starts a request from a submit's HTTP request — the queue routes and the synchronous run alike:
 * the body is the input, the headers ({@link SubmitHeaders}, validated by the route) its options.
 */
export async function startRequest(
  requests: RequestsClient,
  req: Request,
  res: Response,
  modelId: string,
  webhookUrl: string | undefined,
): Promise<SubmitResult> {
  const input = jsonObjectBody(req);
  // The synchronous run validates no query string, so the queue options may be absent.
  const { headers, query } = validated(res, { headers: SubmitHeaders, query: SubmitQuery.optional() });
  try {
    return await requests.submit({
      owner: ownerOf(res),
      modelId,
      input,
      webhookUrl,
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
