import { Router, type Response } from 'express';
import type { RequestsClient } from '../../client/requests';
import { webhookMessageId } from '../../webhooks/signing';
import type { WebhookDeliveries } from '../../webhooks/deliveries';
import type { WebhookKeys } from '../../webhooks/keys';
import type { DeliveryReport } from '../../workflows/webhook-delivery/messages';
import { ownerOf } from '../auth';
import { HttpError } from '../http-error';
import { RequestParams } from '../schemas';
import { validate, validated } from '../validate';
import { findRequest } from './queue';

export interface WebhookRouteDeps {
  requests: RequestsClient;
  webhooks: WebhookDeliveries;
  webhookKeys: WebhookKeys;
}

/** The public keys that verify fal-style signatures; needs no API key, like any JWKS. */
export function jwksRoutes(keys: WebhookKeys): Router {
  const router = Router();
  router.get('/.well-known/jwks.json', async (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(await keys.jwks());
  });
  return router;
}

/**
 * The owner's webhook tools: the delivery log of a request, redelivery on demand, and the
 * Standard Webhooks secret that verifies their deliveries. Registered before the queue routes,
 * whose submit would read `.../webhook/redeliver` as a model id.
 */
export function webhookRoutes(deps: WebhookRouteDeps): Router {
  const router = Router();

  router.get('/webhooks/secret', (_req, res) => {
    const owner = ownerOf(res);
    res.json({ owner, secret: deps.webhookKeys.ownerSecret(owner) });
  });

  const schemas = { params: RequestParams };
  router.get('/:owner/:app/requests/:requestId/webhook', validate(schemas), async (_req, res) => {
    const { params } = validated(res, schemas);
    await findRequest(deps.requests, params, res);
    const report = await deps.webhooks.log(params.requestId);
    if (!report) throw noDelivery();
    sendLog(res, params.requestId, report);
  });

  router.post('/:owner/:app/requests/:requestId/webhook/redeliver', validate(schemas), async (_req, res) => {
    const { params } = validated(res, schemas);
    await findRequest(deps.requests, params, res);
    const report = await deps.webhooks.redeliver(params.requestId);
    if (!report) throw noDelivery();
    res.status(202).json({ status: 'REDELIVERY_REQUESTED', webhook_id: webhookMessageId(params.requestId) });
  });

  return router;
}

function noDelivery(): HttpError {
  return HttpError.notFound(
    'This request has no webhook delivery: it was submitted without fal_webhook, or has not completed yet',
  );
}

function sendLog(res: Response, requestId: string, report: DeliveryReport): void {
  res.json({
    request_id: requestId,
    webhook_id: webhookMessageId(requestId),
    url: report.url,
    state: report.state,
    next_attempt_at: report.nextAttemptAt ?? null,
    attempts: report.attempts.map((a) => ({
      attempt: a.attempt,
      at: a.at,
      trigger: a.trigger,
      status_code: a.statusCode ?? null,
      error: a.error ?? null,
      latency_ms: a.latencyMs,
      next_attempt_at: a.nextAttemptAt ?? null,
    })),
  });
}
