import type { Request } from 'express';
import { QueueStatus } from '../workflows/shared/request';
import type { RequestView } from '../client/requests';

/**
 * The base of the URLs we hand out: the configured public URL, else how this request reached us. With
 * Express's `trust proxy` set (`TRUST_PROXY`), that honours `X-Forwarded-Proto` and `X-Forwarded-Host`.
 */
export function baseUrlOf(req: Request, publicBaseUrl: string | undefined): string {
  return publicBaseUrl ?? `${req.protocol}://${req.host}`;
}

/** The three URLs fal returns with every status, built from the app's base URL. */
export function requestUrls(base: string, appId: string, requestId: string) {
  const response_url = `${base}/${appId}/requests/${requestId}`;
  return { response_url, status_url: `${response_url}/status`, cancel_url: `${response_url}/cancel` };
}

/** `owner/app` of a full model id: status, result and cancel URLs use only these two segments. */
export function appIdOf(modelId: string): string {
  return modelId.split('/').slice(0, 2).join('/');
}

/** The status body fal's clients expect for each state. */
export function statusBody(view: RequestView, base: string, withLogs: boolean): Record<string, unknown> {
  const common = { request_id: view.requestId, ...requestUrls(base, appIdOf(view.modelId), view.requestId) };
  switch (view.status) {
    case QueueStatus.InQueue:
      return { status: view.status, ...common, queue_position: view.queuePosition, logs: withLogs ? view.logs : [] };
    case QueueStatus.InProgress:
      return { status: view.status, ...common, logs: withLogs ? view.logs : [] };
    case QueueStatus.Completed: {
      const { outcome } = view;
      const body: Record<string, unknown> = {
        status: view.status,
        ...common,
        logs: withLogs ? outcome.logs : [],
        metrics: outcome.metrics,
      };
      if (outcome.status === 'ERROR') {
        body.error = outcome.message;
        body.error_type = outcome.errorType;
      }
      return body;
    }
  }
}
