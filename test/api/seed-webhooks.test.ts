import { startLoopbackServer, respondJson, type LoopbackServer } from '../helpers/http-peers';
import { startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

/** The seed document's walkthrough, as a user would run it with curl. */
describe('the seed walkthrough: legacy submit with fal_webhook', () => {
  const seedOutput = {
    images: [
      {
        url: 'https://url.to/image.png',
        content_type: 'image/png',
        file_name: 'image.png',
        file_size: 1824075,
        width: 1024,
        height: 1024,
      },
    ],
    seed: 196619188014358660,
  };
  let backend: LoopbackServer;
  let receiver: LoopbackServer;
  let stack: Stack;

  beforeAll(async () => {
    backend = await startLoopbackServer(respondJson(200, seedOutput));
    receiver = await startLoopbackServer(respondJson(200, { ok: true }));
    stack = await startStack({
      models: {
        legacySubmitModel: 'fal-ai/lora',
        models: [
          {
            id: 'fal-ai/lora',
            backend: { kind: 'http', url: `${backend.url}/generate` },
            inputSchema: { type: 'object', required: ['model_name'], properties: { model_name: { type: 'string' } } },
          },
          { id: 'fal-ai/unconfigured', backend: { kind: 'http', url: '' } },
        ],
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await backend?.close();
    await receiver?.close();
  });

  const legacySubmit = (body: unknown) =>
    stack.api(`/fal/queue/submit?fal_webhook=${encodeURIComponent(`${receiver.url}/api/fal/webhook`)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('returns a request_id at once and POSTs the OK body to the webhook when the model is done', async () => {
    const before = receiver.requests.length;
    const res = await legacySubmit({
      model_name: 'stabilityai/stable-diffusion-xl-base-1.0',
      prompt: 'Photo of a cute dog',
    });
    expect(res.status).toBe(200);
    const { request_id } = (await res.json()) as { request_id: string };
    expect(request_id).toMatch(/^[0-9a-f-]{36}$/);

    const hook = await receiver.nth(before + 1);
    expect(hook.method).toBe('POST');
    expect(hook.url).toBe('/api/fal/webhook');
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.json).toEqual({
      request_id,
      gateway_request_id: request_id,
      status: 'OK',
      payload: seedOutput,
      error: null,
    });
    // The backend got the input exactly as submitted.
    expect(backend.requests.at(-1)?.json).toEqual({
      model_name: 'stabilityai/stable-diffusion-xl-base-1.0',
      prompt: 'Photo of a cute dog',
    });
  });

  it('sends exactly the seed ERROR body when model_name is missing, without calling the backend', async () => {
    const calls = backend.requests.length;
    const before = receiver.requests.length;
    const res = await legacySubmit({ prompt: 'Photo of a cute dog' });
    expect(res.status).toBe(200);
    const { request_id } = (await res.json()) as { request_id: string };

    const hook = await receiver.nth(before + 1);
    expect(hook.json).toEqual({
      request_id,
      gateway_request_id: request_id,
      status: 'ERROR',
      payload: { detail: [{ loc: ['body', 'model_name'], msg: 'field required', type: 'value_error.missing' }] },
      error: 'Invalid status code: 422',
    });
    expect(backend.requests.length).toBe(calls);

    const result = await stack.api(`/fal-ai/lora/requests/${request_id}`);
    expect(result.status).toBe(422);
    expect(await result.json()).toEqual({
      detail: [{ loc: ['body', 'model_name'], msg: 'field required', type: 'value_error.missing' }],
      error_type: 'validation_error',
    });
  });

  it('ends a request for a model without a backend as ERROR, saying how to configure one', async () => {
    const { request_id } = await submitJson(stack, '/fal-ai/unconfigured', { prompt: 'x' });
    const status = await waitCompleted(stack, 'fal-ai/unconfigured', request_id);
    expect(status.error_type).toBe('backend_not_configured');
    expect(status.error).toMatch(/backend\.url.*models file/);
  });
});
