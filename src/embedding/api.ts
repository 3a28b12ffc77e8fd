/**
 * `fal-queue-temporal/api`: the queue's HTTP API (Express 5) for an application that serves it from
 * its own process. {@link createQueueApi} builds it on your Temporal client; mount `api.app` in your
 * Express app. docs/embedding.md shows it, and test/embedding runs that example from the packed package.
 */
export { createQueueApi, startServer } from '../server';
export type { QueueApi, QueueApiOptions, RunningServer, StartServerOptions } from '../server';
export { createApp } from '../api/app';
export type { AppDeps } from '../api/app';
export { apiRoutes, apiDocument } from '../api/api-routes';
export { buildOpenApiDocument } from '../api/openapi';
export type { RouteDoc, ResponseDoc } from '../api/openapi';
export { VERSION } from '../version';
