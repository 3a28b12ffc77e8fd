import type { Response } from 'express';
import type { RequestsClient } from '../../client/requests';
import { webhookMessageId } from '../../webhooks/signing';
import type { WebhookDeliveries } from '../../webhooks/deliveries';
import type { WebhookKeys } from '../../webhooks/keys';
import type { DeliveryReport } from '../../workflows/webhook-delivery/messages';
import { ownerOf } from '../auth';
import { HttpError } from '../http-error';
import type { PairedLimit } from '../rate-limit';
import { Jwks, RedeliveryAccepted, WebhookDeliveryLog, WebhookSecret } from '../response-schemas';
import { commonErrors, errorDoc, RequestIdParams } from '../route-docs';
import { routesWith } from '../route';
import { findRequest } from './queue';

export interface WebhookRouteDeps {
  requests: RequestsClient;
  webhooks: WebhookDeliveries;
  webhookKeys: WebhookKeys;
  /** Redeliveries allowed per request and per owner. */
  redeliveryLimit: PairedLimit;
}

const route = routesWith<WebhookRouteDeps>();

/** The public keys that verify fal-style signatures; needs no API key, like any JWKS. */
export const jwksRoutes = [
  route({
    method: 'get',
    route: '/.well-known/jwks.json',
    summary: "Public keys of fal's webhook signatures (`x-fal-webhook-signature`)",
    tags: ['webhooks'],
    auth: false,
    responses: { 200: { description: 'JWKS', schema: Jwks } },
    async handle({ deps, res }) {
      res.set('cache-control', 'public, max-age=300').json(await deps.webhookKeys.jwks());
    },
  }),
];

/**
 * The owner's webhook tools: the delivery log of a request, redelivery on demand, and the
 * Standard Webhooks secret that verifies their deliveries. Before the generic submit in the table,
 * which would read `.../webhook/redeliver` as a model id.
 */
export const webhookRoutes = [
  route({
    method: 'get',
    route: '/:owner/:app/requests/:requestId/webhook',
    summary: "A request's webhook delivery log",
    tags: ['webhooks'],
    auth: true,
    request: { params: RequestIdParams },
    responses: {
      200: { description: 'Every attempt', schema: WebhookDeliveryLog },
      ...commonErrors(401, 404, 422, 503),
    },
    async handle({ deps, res, params }) {
      await findRequest(deps.requests, params, res);
      const report = await deps.webhooks.log(params.requestId);
      if (!report) throw noDelivery();
      sendLog(res, params.requestId, report);
    },
  }),
  route({
    method: 'post',
    route: '/:owner/:app/requests/:requestId/webhook/redeliver',
    summary: "Send a request's webhook once more",
    description:
      'Rate-limited per request and per owner (`REDELIVER_RATE_PER_REQUEST`, `REDELIVER_RATE_PER_OWNER`): beyond it, 429 with `Retry-After`.',
    tags: ['webhooks'],
    auth: true,
    request: { params: RequestIdParams },
    responses: {
      202: { description: 'Redelivery requested', schema: RedeliveryAccepted },
      429: errorDoc('Too many redeliveries of this request, or by this owner; `Retry-After` says when to try again'),
      ...commonErrors(401, 404, 422, 503),
    },
    async handle({ deps, res, params }) {
      await findRequest(deps.requests, params, res);
      const owner = ownerOf(res);
      const waitMs = deps.redeliveryLimit.tryTake(`${owner}\n${params.requestId}`, owner);
      if (waitMs > 0) {
        const seconds = Math.ceil(waitMs / 1000);
        throw new HttpError(
          429,
          { detail: `Too many redeliveries; try again in ${seconds} s` },
          { 'retry-after': String(seconds) },
        );
      }
      const report = await deps.webhooks.redeliver(params.requestId);
      if (!report) throw noDelivery();
      res.status(202).json({ status: 'REDELIVERY_REQUESTED', webhook_id: webhookMessageId(params.requestId) });
    },
  }),
  route({
    method: 'get',
    route: '/webhooks/secret',
    summary: "The caller's Standard Webhooks secret (verifies `webhook-signature`)",
    description:
      'While a secret rotation is staged, `next_secret` is the secret that takes over when it is activated; deliveries meanwhile carry a signature by each.',
    tags: ['webhooks'],
    auth: true,
    responses: { 200: { description: 'The secret', schema: WebhookSecret }, ...commonErrors(401) },
    async handle({ deps, res }) {
      const owner = ownerOf(res);
      const { secret, next } = await deps.webhookKeys.ownerSecrets(owner);
      res.json({ owner, secret, ...(next && { next_secret: next }) });
    },
  }),
];

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
