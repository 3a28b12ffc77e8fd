import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { ApiKey } from '../config';
import type { RequestsClient } from '../client/requests';
import type { ModelRegistry } from '../models/registry';
import { losslessJsonBody } from '../codec/json-body';
import type { FileStore } from '../storage/file-store';
import { processMetrics, type QueueMetrics } from '../observability/metrics';
import { requestLogging } from '../observability/http-logging';
import { requireKey } from './auth';
import { apiDocument } from './openapi-routes';
import { opsRoutes } from './routes/ops';
import { errorHandler } from './error-handler';
import { HttpError } from './http-error';
import { fileRoutes } from './routes/files';
import { queueRoutes } from './routes/queue';
import { runRoutes } from './routes/run';
import { storageRoutes, uploadRoutes } from './routes/storage';
import { streamRoutes } from './routes/stream';
import type { StatusWatchers } from './status-watchers';
import type { WebhookDeliveries } from '../webhooks/deliveries';
import type { WebhookKeys } from '../webhooks/keys';
import { jwksRoutes, webhookRoutes } from './routes/webhooks';

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
}

/** Builds the Express app of the queue API; listening is the caller's business (see `server.ts`). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.use(requestLogging(deps.logger));
  app.use(
    opsRoutes({
      metrics: deps.metrics ?? processMetrics(),
      readiness: deps.readiness ?? (async () => undefined),
      openapi: apiDocument(),
    }),
  );
  app.use(fileRoutes(deps.fileStore));
  app.use(jwksRoutes(deps.webhookKeys));
  app.use(uploadRoutes(deps));
  app.use(losslessJsonBody({ limit: deps.maxBodyBytes, type: ['application/json', 'application/*+json'] }));
  app.use(requireKey(deps.apiKeys));
  // Before the queue routes, whose submit would read these paths as model ids.
  app.use(storageRoutes(deps));
  app.use(webhookRoutes(deps));
  app.use(runRoutes(deps));
  app.use(streamRoutes({ ...deps, keepAliveMs: deps.streamKeepAliveMs }));
  app.use(queueRoutes(deps));
  app.use(() => {
    throw HttpError.notFound('Not found');
  });
  app.use(errorHandler(deps.logger));
  return app;
}
