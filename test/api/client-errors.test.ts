import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { idempotentRequestId } from '../../src/client/requests';
import { useStack } from '../helpers/fixtures';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { OTHER_KEY, submitJson, waitCompleted } from '../helpers/stack';

const APP = 'acme/echo';

/** Client mistakes get a clear 4xx JSON answer, and none of them leaves anything behind in Temporal. */
describe('bad input at the HTTP edge', () => {
  let echo: LoopbackServer;
  beforeAll(async () => {
    echo = await startLoopbackServer(respondJson(200, { echoed: true }));
  });
  afterAll(async () => {
    await echo?.close();
  });
  const fx = useStack({
    models: () => ({ models: [{ id: APP, backend: { kind: 'http', url: echo.url } }] }),
    env: { MAX_BODY_BYTES: '1024' },
  });

  const post = (path: string, body: string | undefined, headers: Record<string, string> = {}, key?: string | null) =>
    fx.stack.api(path, { method: 'POST', body, headers, key });
  const expectError = async (res: Response, status: number, body: unknown) => {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual(body);
  };
  const json = { 'content-type': 'application/json' };

  it('refuses requests without a valid key with 401 and a JSON explanation', async () => {
    await expectError(await post(`/${APP}`, '{}', json, null), 401, {
      detail: "Missing or malformed Authorization header: expected 'Key <key_id>:<key_secret>'",
    });
    await expectError(await post(`/${APP}`, '{}', json, 'test-key:wrong'), 401, { detail: 'Invalid API key' });
    await expectError(await post(`/${APP}`, '{}', json, 'nobody:secret'), 401, { detail: 'Invalid API key' });
  });

  it('answers malformed JSON with 400, a wrong content type with 415 and an oversize body with 413', async () => {
    const malformed = await post(`/${APP}`, '{"prompt": ', json);
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { detail: string }).detail).toMatch(/^Malformed JSON body/);
    await expectError(await post(`/${APP}`, 'prompt=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, {
      detail: 'Content-Type must be application/json, got application/x-www-form-urlencoded',
    });
    await expectError(await post(`/${APP}`, JSON.stringify({ x: 'y'.repeat(2000) }), json), 413, {
      detail: 'Request body is larger than the limit of 1024 bytes',
    });
  });

  it('answers a body that is not a JSON object, and a bad fal_webhook, with a 422 naming the field', async () => {
    await expectError(await post(`/${APP}`, '[1,2]', json), 422, {
      detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }],
    });
    const bad = await post(`/${APP}?fal_webhook=ftp://example.com/hook`, '{}', json);
    expect(bad.status).toBe(422);
    expect(await bad.json()).toEqual({
      detail: [{ loc: ['query', 'fal_webhook'], msg: expect.stringMatching(/http/), type: 'value_error' }],
    });
    const creds = await post(`/${APP}?fal_webhook=${encodeURIComponent('https://u:p@example.com/')}`, '{}', json);
    expect(creds.status).toBe(422);
  });

  it('answers unknown models, requests and routes with 404', async () => {
    await expectError(await post('/acme/nope', '{}', json), 404, { detail: 'Model acme/nope not found' });
    await expectError(await fx.stack.api(`/${APP}/requests/00000000-0000-4000-8000-000000000000/status`), 404, {
      detail: 'Request not found',
    });
    await expectError(await fx.stack.api(`/${APP}/requests/not-a-request`), 404, { detail: 'Request not found' });
    await expectError(await fx.stack.api('/nothing/here/at/all/really'), 404, { detail: 'Not found' });
  });

  it('shows a request only to its owner and only under its own app', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { hello: 'world' });
    await waitCompleted(fx.stack, APP, request_id);
    const mine = await fx.stack.api(`/${APP}/requests/${request_id}`);
    expect(mine.status).toBe(200);
    expect(await mine.json()).toEqual({ echoed: true });
    for (const path of [`/${APP}/requests/${request_id}`, `/${APP}/requests/${request_id}/status`]) {
      await expectError(await fx.stack.api(path, { key: OTHER_KEY }), 404, { detail: 'Request not found' });
    }
    await expectError(
      await fx.stack.api(`/${APP}/requests/${request_id}/cancel`, { method: 'PUT', key: OTHER_KEY }),
      404,
      {
        detail: 'Request not found',
        status: 'NOT_FOUND',
      },
    );
    await expectError(await fx.stack.api(`/acme/other/requests/${request_id}`), 404, { detail: 'Request not found' });
  });

  it('creates exactly one workflow per accepted submit and none for rejected ones', async () => {
    // Each submit carries an Idempotency-Key, which fixes the id its workflow would get. Describing a workflow by id
    // reads the server's own record (not visibility, which lags): "not found" is final, whenever it is asked.
    const keyed = (key: string) => ({ ...json, 'idempotency-key': key });
    const tag = randomUUID();
    const attempts: { modelId: string; key: string; send: (headers: Record<string, string>) => Promise<Response> }[] = [
      { modelId: APP, key: `broken-${tag}`, send: (h) => post(`/${APP}`, '{"broken', h) },
      { modelId: APP, key: `array-${tag}`, send: (h) => post(`/${APP}`, '[]', h) },
      { modelId: APP, key: `hook-${tag}`, send: (h) => post(`/${APP}?fal_webhook=nope`, '{}', h) },
      { modelId: 'acme/nope', key: `model-${tag}`, send: (h) => post('/acme/nope', '{}', h) },
      { modelId: APP, key: `anonymous-${tag}`, send: (h) => post(`/${APP}`, '{}', h, null) },
    ];
    const rejected = await Promise.all(attempts.map((a) => a.send(keyed(a.key))));
    expect(rejected.map((r) => r.status)).toEqual([400, 422, 422, 404, 401]);
    for (const { modelId, key } of attempts) {
      const id = idempotentRequestId('alice', modelId, key);
      await expect(fx.temporal.workflow.getHandle(id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    }

    const accepted = await post(`/${APP}`, JSON.stringify({ ok: 1 }), keyed(`accepted-${tag}`));
    expect(accepted.status).toBe(200);
    const { request_id } = (await accepted.json()) as { request_id: string };
    expect(request_id).toBe(idempotentRequestId('alice', APP, `accepted-${tag}`));
    const described = await fx.temporal.workflow.getHandle(request_id).describe();
    expect(described.type).toBe('inferenceRequest');
    expect(described.taskQueue).toBe(fx.stack.config.temporal.taskQueue);
  });
});
