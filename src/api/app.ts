import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { ApiKey } from '../config';
import type { RequestsClient } from '../client/requests';
import type { ModelRegistry } from '../models/registry';
import type { LocalFileStore } from '../storage/file-store';
import { requireKey } from './auth';
import { errorHandler } from './error-handler';
import { HttpError } from './http-error';
import { fileRoutes } from './routes/files';
import { queueRoutes } from './routes/queue';

export interface AppDeps {
  requests: RequestsClient;
  registry: ModelRegistry;
  fileStore: LocalFileStore;
  apiKeys: readonly ApiKey[];
  logger: Logger;
  maxBodyBytes: number;
  publicBaseUrl?: string;
}

/** Builds the Express app of the queue API; listening is the caller's business (see `server.ts`). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use(fileRoutes(deps.fileStore));
  app.use(express.json({ limit: deps.maxBodyBytes, type: ['application/json', 'application/*+json'] }));
  app.use(requireKey(deps.apiKeys));
  app.use(queueRoutes(deps));
  app.use(() => {
    throw HttpError.notFound('Not found');
  });
  app.use(errorHandler(deps.logger));
  return app;
}
