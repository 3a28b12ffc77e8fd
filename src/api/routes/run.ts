import type { RequestsClient, RequestView } from '../../client/requests';
import { QueueStatus } from '../../workflows/shared/request';
import type { ModelRegistry } from '../../models/registry';
import { ownerOf } from '../auth';
import { HttpError } from '../http-error';
import { sendResult } from '../result-body';
import { commonErrors, finishedResult, ModelIdParams, submitBody } from '../route-docs';
import { routesWith } from '../route';
import { SubmitHeaders } from '../schemas';
import type { StatusWatchers } from '../status-watchers';
import { startRequest } from './queue';

export interface RunRouteDeps {
  requests: RequestsClient;
  registry: ModelRegistry;
  watchers: StatusWatchers;
}

/** Path prefix of the synchronous form: `https://fal.run/{id}` maps to `{base}/run/{id}`. */
export const RUN_PREFIX = '/run';

/**
 * fal's synchronous endpoint (`fal.run`): `POST /run/{owner}/{app}[/{path}]` queues the request like
 * a submit, waits for it and answers as the result endpoint would, with `x-fal-request-id`.
 *
 * It is still a queued, durable request. If the caller hangs up first, nobody can collect the result,
 * so the request is cancelled — unless it carries an `Idempotency-Key`, in which case it runs on and
 * a retry with the same key picks up its result.
 */
export const runRoutes = [
  routesWith<RunRouteDeps>()({
    method: 'post',
    route: `${RUN_PREFIX}/:owner/:app{/*path}`,
    summary: 'Run synchronously (fal.run): queue, wait, answer with the result',
    tags: ['queue'],
    auth: true,
    request: { params: ModelIdParams, headers: SubmitHeaders, body: submitBody },
    responses: {
      ...finishedResult,
      ...commonErrors(401, 404, 413, 415, 429),
      422: finishedResult[422],
      ...commonErrors(503),
    },
    async handle({ deps, req, res, params, headers }) {
      const modelId = [params.owner, params.app, ...(params.path ?? [])].join('/');
      if (!deps.registry.get(modelId)) throw HttpError.notFound(`Model ${modelId} not found`);
      // Listening before the submit: a caller may hang up while it is under way.
      let left = false;
      let callerLeft = () => undefined as void;
      res.on('close', () => {
        if (res.writableFinished) return;
        left = true;
        callerLeft();
      });
      const { requestId } = await startRequest(deps.requests, req, res, modelId, { headers });
      const abandon = () => {
        if (!headers['idempotency-key']) deps.requests.cancel(requestId).catch(() => undefined);
      };
      if (left) return abandon();

      const view = await new Promise<RequestView | undefined>((resolve) => {
        const unwatch = deps.watchers.watch(requestId, ownerOf(res), {}, (event) => {
          if (event.type === 'view' && event.view.status !== QueueStatus.Completed) return;
          resolve(event.type === 'view' ? event.view : undefined);
        });
        callerLeft = () => {
          unwatch();
          resolve(undefined);
          abandon();
        };
      });
      if (left) return;
      if (view?.status !== QueueStatus.Completed) {
        throw new HttpError(503, { detail: 'The server is shutting down; the request was not finished' });
      }
      sendResult(res, view.requestId, view.outcome);
    },
  }),
];
