import { randomUUID } from 'node:crypto';
import { apiRoutes } from '../../src/api/api-routes';
import { openApiPathsOf } from '../../src/api/openapi';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { startStack, type Stack } from '../helpers/stack';

/** A concrete URL path for an OpenAPI path: every `{param}` filled with a value no route knows. */
function samplePath(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'requestId' ? randomUUID() : `no-such-${name}`));
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

  it('documents each entry of the route table, with its path variants, and nothing else', () => {
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method} ${path}`),
    );
    const table = apiRoutes.flatMap((route) =>
      openApiPathsOf(route.route).map((variant) => `${route.method} ${variant.path}`),
    );
    expect(table.length).toBeGreaterThan(10);
    expect(new Set(table).size).toBe(table.length);
    expect([...documented].sort()).toEqual([...table].sort());
    for (const route of apiRoutes) {
      const operation = doc.paths[openApiPathsOf(route.route)[0]!.path]![route.method] as { security: unknown[] };
      expect({ route: route.route, security: operation.security }).toEqual({
        route: route.route,
        security: route.auth ? [{ falKey: [] }] : [],
      });
    }
  });

  it("answers every documented operation with that route's handler, not the app's fallback", async () => {
    const fallback = await stack.api(`/${randomUUID()}/no/such/route`, { method: 'GET' });
    expect({ status: fallback.status, body: await fallback.json() }).toEqual({
      status: 404,
      body: { detail: 'Not found' },
    });
    const answers: Record<string, unknown> = {};
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        // Nothing in these paths exists, so each handler answers quickly (mostly its own 404).
        const res = await stack.api(samplePath(path), { method: method.toUpperCase() });
        const text = await res.text();
        answers[`${method} ${path}`] = res.status === 404 && text === '{"detail":"Not found"}' ? 'fallback' : 'handled';
      }
    }
    expect(Object.keys(answers).filter((key) => answers[key] !== 'handled')).toEqual([]);
    expect(Object.keys(answers)).toHaveLength(Object.values(doc.paths).flatMap((item) => Object.keys(item)).length);
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
