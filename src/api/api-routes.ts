/**
 * The route table: every route of the API, in the order Express tries them. Each entry is both the
 * Express route and its OpenAPI operation (see {@link ApiRoute}), so `/openapi.json` documents
 * exactly what the app answers.
 *
 * To add a route: write its entry with `routesWith<YourDeps>()({...})` in the route module of its
 * area (`./routes/*`) and list it below. Routes without a key come first; the key check runs between
 * them and the others, before any body is parsed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOpenApiDocument } from './openapi';
import type { ApiRoute } from './route';
import { fileRoutes, type FileRouteDeps } from './routes/files';
import { opsRoutes, type OpsRouteDeps } from './routes/ops';
import { legacySubmitRoutes, requestRoutes, submitRoutes, type QueueRouteDeps } from './routes/queue';
import { runRoutes, type RunRouteDeps } from './routes/run';
import { storageRoutes, uploadRoutes, type StorageRouteDeps } from './routes/storage';
import { streamRoutes, type StreamRouteDeps } from './routes/stream';
import { jwksRoutes, webhookRoutes, type WebhookRouteDeps } from './routes/webhooks';

/** What the routes' handlers need, all together. */
export type RouteDeps = OpsRouteDeps &
  FileRouteDeps &
  QueueRouteDeps &
  RunRouteDeps &
  StorageRouteDeps &
  StreamRouteDeps &
  WebhookRouteDeps;

/** Every route, in registration order. */
export const apiRoutes: readonly ApiRoute<RouteDeps>[] = [
  // No key needed.
  ...opsRoutes,
  ...fileRoutes,
  ...jwksRoutes,
  ...uploadRoutes,
  // Behind the key. The POST routes come before the generic submit, which would read their paths as model ids.
  ...storageRoutes,
  ...legacySubmitRoutes,
  ...webhookRoutes,
  ...runRoutes,
  ...streamRoutes,
  ...requestRoutes,
  ...submitRoutes,
];

let document: object | undefined;

/** `/openapi.json`: {@link apiRoutes} as OpenAPI 3.1, built once per process. */
export function apiDocument(): object {
  document ??= buildOpenApiDocument(apiRoutes, {
    version: packageVersion(),
    description:
      'A self-hosted, fal.ai-compatible inference request queue with webhooks, on Temporal. Send `Authorization: Key <key_id>:<key_secret>` on every route marked with a lock.',
  });
  return document;
}

function packageVersion(): string {
  try {
    // src/api or dist/api: the package root is two levels up either way.
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
}
