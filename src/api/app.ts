import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { ApiKey } from '../config';
import type { RequestsClient } from '../client/requests';
import type { ModelRegistry } from '../models/registry';
import type { FileStore } from '../storage/file-store';
import { processMetrics, type QueueMetrics } from '../observability/metrics';
import { requestLogging } from '../observability/http-logging';
import { apiDocument, apiRoutes, type RouteDeps } from './api-routes';
import { requireKey } from './auth';
import { codecRoutes, type CodecRoutesDeps } from './codec-routes';
import { errorHandler } from './error-handler';
import { HttpError } from './http-error';
import { PairedLimit, TokenBuckets, type Rate } from './rate-limit';
import { mountRoutes } from './route';
import { docsAssets } from './routes/ops';
import type { StatusWatchers } from './status-watchers';
import type { WebhookDeliveries } from '../webhooks/deliveries';
import type { WebhookKeys } from '../webhooks/keys';

/** Express's `trust proxy` values: `true`, a hop count, or addresses / subnets / `loopback` etc. */
export type TrustProxy = boolean | number | string;

/** Default redelivery limits: a receiver being debugged gets a few at once; an owner a few hundred an hour. */
export const DEFAULT_REDELIVERY_LIMITS = {
  perRequest: { burst: 10, periodMs: 10 * 60_000 },
  perOwner: { burst: 300, periodMs: 3_600_000 },
} as const satisfies Record<string, Rate>;

export interface AppDeps {
  /** Series `/metrics` serves; default: this process's ({@link processMetrics}). */
  metrics?: QueueMetrics;
  /** What `/readyz` checks (Temporal answers); default: always ready. */
  readiness?: () => Promise<void>;
  requests: RequestsClient;
  registry: ModelRegistry;
  fileStore: FileStore;
  apiKeys: readonly ApiKey[];
  logger: Logger;
  maxBodyBytes: number;
  publicBaseUrl?: string;
  /**
   * Express's `trust proxy` (`TRUST_PROXY`): which proxies' `X-Forwarded-Proto` / `X-Forwarded-Host`
   * build the URLs we hand out when `publicBaseUrl` is unset. @default false
   */
  trustProxy?: TrustProxy;
  /** Shared polls of request state behind the status stream and the synchronous run. */
  watchers: StatusWatchers;
  /** Longest silence on a status stream before a keep-alive comment. */
  streamKeepAliveMs: number;
  /** Largest file accepted by the storage upload. */
  maxUploadBytes: number;
  /** Webhook delivery logs and redelivery. */
  webhooks: WebhookDeliveries;
  /** Webhook signing keys: the public JWKS and each owner's Standard Webhooks secret. */
  webhookKeys: WebhookKeys;
  /** Token buckets of `POST .../webhook/redeliver`. @default {@link DEFAULT_REDELIVERY_LIMITS} */
  redeliveryLimits?: { perRequest: Rate; perOwner: Rate };
  /** Clock of the rate limits. @default Date.now */
  now?: () => number;
  /** The codec endpoint for operators (`/codec/encode`, `/codec/decode`); omitted = not served (no payload codecs). */
  codec?: CodecRoutesDeps;
}

/** Builds the Express app of the queue API from the route table; listening is the caller's business (see `server.ts`). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // Express hashes every body it sends for an ETag (0.2 ms of CPU per answer in a profile of the 2-core VM); no client
  // of a queue API revalidates a submit or a status, and the docs' static assets have their own.
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.set('trust proxy', deps.trustProxy ?? false);

  const limits = deps.redeliveryLimits ?? DEFAULT_REDELIVERY_LIMITS;
  const routeDeps: RouteDeps = {
    ...deps,
    metrics: deps.metrics ?? processMetrics(),
    readiness: deps.readiness ?? (async () => undefined),
    openapi: apiDocument(),
    redeliveryLimit: new PairedLimit(
      new TokenBuckets(limits.perRequest, deps.now),
      new TokenBuckets(limits.perOwner, deps.now),
    ),
  };
  const mount = { maxBodyBytes: deps.maxBodyBytes };

  app.use(requestLogging(deps.logger));
  app.use(
    mountRoutes(
      apiRoutes.filter((route) => !route.auth),
      routeDeps,
      mount,
    ),
  );
  app.use(docsAssets());
  // Operator auth of its own, checked before its body is read; never the tenants' API keys.
  if (deps.codec) app.use(codecRoutes(deps.codec));
  // Every other path needs the key, checked before any body is read: anonymous clients cannot make us parse.
  app.use(requireKey(deps.apiKeys));
  app.use(
    mountRoutes(
      apiRoutes.filter((route) => route.auth),
      routeDeps,
      mount,
    ),
  );
  app.use(() => {
    throw HttpError.notFound('Not found');
  });
  app.use(errorHandler(deps.logger));
  return app;
}
