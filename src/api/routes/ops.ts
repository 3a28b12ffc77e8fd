import { dirname } from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import type { QueueMetrics } from '../../observability/metrics';
import { OptionalPeers, requirePeers } from '../../optional-peers';
import { VERSION } from '../../version';
import { Health, Liveness, NotReady } from '../response-schemas';
import { routesWith } from '../route';

export interface OpsRouteDeps {
  metrics: QueueMetrics;
  /** Resolves when Temporal answers; `/readyz` reports its failure as 503. */
  readiness: () => Promise<void>;
  /** The OpenAPI document served at `/openapi.json`. */
  openapi: object;
}

// Swagger UI's prebuilt assets, served from the npm package (an optional peer): the docs page needs no CDN.
const SWAGGER_UI_DIR = swaggerUiDir();
const SWAGGER_UI_ASSETS = new Set([
  '/swagger-ui.css',
  '/swagger-ui-bundle.js',
  '/favicon-32x32.png',
  '/favicon-16x16.png',
]);

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>fal-queue-temporal API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    // validatorUrl: null keeps the page from asking an online validator about our document.
    window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });
  </script>
</body>
</html>
`;

const route = routesWith<OpsRouteDeps>();

/**
 * What operators and tools read, all without an API key: `/healthz` (the process is up), `/readyz`
 * (Temporal answers), `/metrics` (Prometheus), `/openapi.json` and the `/docs` page.
 */
export const opsRoutes = [
  route({
    method: 'get',
    route: '/healthz',
    summary: 'Liveness: the process is up',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'Up, and the version serving', schema: Liveness } },
    handle: ({ res }) => res.json({ status: 'ok', version: VERSION }),
  }),
  route({
    method: 'get',
    route: '/readyz',
    summary: 'Readiness: Temporal answers for our namespace',
    tags: ['operations'],
    auth: false,
    responses: {
      200: { description: 'Ready', schema: Health },
      503: { description: 'Temporal is unreachable', schema: NotReady },
    },
    async handle({ deps, res }) {
      try {
        await deps.readiness();
        res.json({ status: 'ok' });
      } catch (err) {
        // A state, not an error of this request: answered here so probes do not fill the error log.
        const message = (err as { message?: unknown })?.message ?? String(err);
        res.status(503).json({ status: 'unavailable', detail: `Temporal is unreachable: ${String(message)}` });
      }
    },
  }),
  route({
    method: 'get',
    route: '/metrics',
    summary: 'Prometheus metrics',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'Text exposition format', schema: z.string(), contentType: 'text/plain' } },
    async handle({ deps, res }) {
      const { registry } = deps.metrics;
      res.set('content-type', registry.contentType).send(await registry.metrics());
    },
  }),
  route({
    method: 'get',
    route: '/openapi.json',
    summary: 'This document',
    tags: ['operations'],
    auth: false,
    responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
    handle: ({ deps, res }) => res.json(deps.openapi),
  }),
  route({
    method: 'get',
    route: '/docs',
    summary: 'Interactive API documentation (Swagger UI, served from this process)',
    tags: ['operations'],
    auth: false,
    responses: {
      200: { description: 'HTML page', schema: z.string(), contentType: 'text/html' },
      501: {
        description: 'swagger-ui-dist (an optional peer) is not installed',
        schema: z.string(),
        contentType: 'text/plain',
      },
    },
    handle: ({ res }) => {
      if (typeof SWAGGER_UI_DIR !== 'string') res.status(501).type('text').send(SWAGGER_UI_DIR.message);
      else res.type('html').send(DOCS_PAGE);
    },
  }),
];

/** The Swagger UI assets the `/docs` page loads (and nothing else of the package). */
export function docsAssets(): RequestHandler {
  const router = Router();
  if (typeof SWAGGER_UI_DIR !== 'string') return router;
  const assets = express.static(SWAGGER_UI_DIR, { index: false, maxAge: '1h' });
  router.use('/docs', (req, res, next) => (SWAGGER_UI_ASSETS.has(req.path) ? assets(req, res, next) : next()));
  return router;
}

/** Where swagger-ui-dist is installed, or why the docs page cannot be served. */
function swaggerUiDir(): string | Error {
  try {
    requirePeers('the /docs page', OptionalPeers.swaggerUi);
    return dirname(require.resolve('swagger-ui-dist/package.json'));
  } catch (err) {
    return err as Error;
  }
}
