import type { Express } from 'express';
import { openApiPathsOf } from '../../src/api/openapi';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { startStack, type Stack } from '../helpers/stack';

interface LiveRoute {
  method: string;
  path: string;
}

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
  rawPath?: string | string[];
  slash?: boolean;
}

/** Every route the app answers, found by walking its router stack (and the routers mounted in it). */
function liveRoutes(app: Express): LiveRoute[] {
  const found: LiveRoute[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const path of paths) {
          for (const [method, on] of Object.entries(layer.route.methods)) {
            if (on && method !== '_all') found.push({ method, path: prefix + path });
          }
        }
      } else if (layer.handle.stack) {
        if (Array.isArray(layer.rawPath)) throw new Error('a router mounted on several paths: teach this walker');
        walk(layer.handle.stack, layer.slash || !layer.rawPath ? prefix : prefix + layer.rawPath);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return found;
}

describe('OpenAPI document and docs page', () => {
  let stack: Stack;
  let backend: LoopbackServer;
  let doc: { openapi: string; paths: Record<string, Record<string, unknown>>; components: Record<string, unknown> };

  beforeAll(async () => {
    backend = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({
      models: { models: [{ id: 'acme/doc', backend: { kind: 'http', url: backend.url } }] },
      workers: false,
    });
    const res = await fetch(`${stack.url}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as typeof doc;
  });
  afterAll(async () => {
    await stack?.stop();
    await backend?.close();
  });

  it('documents every live route, and only live routes (add yours to src/api/openapi-routes.ts)', () => {
    const live = liveRoutes(stack.server.app);
    expect(live.length).toBeGreaterThan(10);
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`)),
    );
    const liveKeys = new Set(
      live.flatMap((route) => openApiPathsOf(route.path).map((variant) => `${route.method} ${variant.path}`)),
    );
    const undocumented = [...liveKeys].filter((key) => !documented.has(key));
    const stale = [...documented].filter((key) => !liveKeys.has(key));
    expect({ undocumented, stale }).toEqual({ undocumented: [], stale: [] });
  });

  it("is OpenAPI 3.1 generated from the routes' zod schemas", () => {
    expect(doc.openapi).toBe('3.1.0');
    const submit = doc.paths['/{owner}/{app}']!.post as {
      parameters: { in: string; name: string; required?: boolean; schema: { pattern?: string } }[];
      security: unknown[];
    };
    // From SubmitParams / SubmitQuery / SubmitHeaders in src/api/schemas.ts.
    expect(submit.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          in: 'path',
          name: 'owner',
          required: true,
          schema: expect.objectContaining({ pattern: expect.any(String) }),
        }),
        expect.objectContaining({ in: 'query', name: 'fal_webhook' }),
        expect.objectContaining({ in: 'header', name: 'idempotency-key' }),
      ]),
    );
    expect(submit.security).toEqual([{ falKey: [] }]);
    const health = doc.paths['/healthz']!.get as { security: unknown[] };
    expect(health.security).toEqual([]);
    expect(Object.keys((doc.components as { schemas: object }).schemas)).toEqual(
      expect.arrayContaining(['Error', 'ValidationError', 'StatusResponse', 'SubmitResponse']),
    );
  });

  it('answers client mistakes in the documented shapes', async () => {
    const noKey = await stack.api('/acme/doc', { method: 'POST', key: null });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({ detail: expect.any(String) });
    const badQuery = await stack.api('/acme/doc?fal_webhook=not-a-url', { method: 'POST' });
    expect(badQuery.status).toBe(422);
    expect(await badQuery.json()).toEqual({
      detail: [{ loc: ['query', 'fal_webhook'], msg: expect.any(String), type: expect.any(String) }],
    });
  });

  it('serves an interactive docs page whose assets all come from this server', async () => {
    const page = await fetch(`${stack.url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain("url: '/openapi.json'");
    expect(html).not.toMatch(/https?:\/\//);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).toEqual(expect.arrayContaining(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js']));
    for (const asset of assets) {
      const res = await fetch(`${stack.url}${asset}`);
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
      await res.arrayBuffer();
    }
    // Only the assets the page uses are served from the package, not its demo page.
    expect((await fetch(`${stack.url}/docs/index.html`)).status).toBe(401);
  });
});
