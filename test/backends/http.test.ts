import { useStack } from '../helpers/fixtures';
import { eventually, submitJson, waitCompleted } from '../helpers/stack';

const APP = 'acme/http-model';

describe('a model behind an HTTP backend (backend kind "http")', () => {
  const fx = useStack({
    models: ({ backend }) => ({
      models: [
        {
          id: APP,
          backend: { kind: 'http', url: `${backend.url}/generate`, headers: { authorization: 'Bearer backend-token' } },
        },
      ],
    }),
  });

  const status = async (id: string) => {
    const res = await fx.stack.api(`/${APP}/requests/${id}/status?logs=1`);
    return (await res.json()) as { status: string; logs: { message: string }[] };
  };

  it('POSTs the input with its headers, shows the call in the logs while it runs, returns the answer and calls the webhook', async () => {
    const hook = encodeURIComponent(`${fx.receiver.url}/hook`);
    const { request_id } = await submitJson(fx.stack, `/${APP}?fal_webhook=${hook}`, { prompt: 'a dog' });
    const call = await fx.backend.nth(fx.backend.requests.length + 1);
    expect(call).toMatchObject({ method: 'POST', url: '/generate', json: { prompt: 'a dog' } });
    expect(call.headers.authorization).toBe('Bearer backend-token');
    const running = await eventually(async () => {
      const s = await status(request_id);
      return s.status === 'IN_PROGRESS' && s.logs.some((l) => l.message.startsWith('POST ')) ? s : undefined;
    });
    expect(running.logs[0]?.message).toBe(`POST ${fx.backend.url}/generate`);

    fx.backend.release({ images: [{ url: 'https://example.test/dog.png' }] });
    const done = await waitCompleted(fx.stack, APP, request_id);
    expect(done.error).toBeUndefined();
    expect((done.logs as { message: string }[]).map((l) => l.message)).toContainEqual(
      expect.stringMatching(/^backend answered 200/),
    );
    const result = await fx.stack.api(`/${APP}/requests/${request_id}`);
    expect(await result.json()).toEqual({ images: [{ url: 'https://example.test/dog.png' }] });
    const delivered = await eventually(async () =>
      fx.receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === request_id),
    );
    expect(delivered.json).toMatchObject({
      status: 'OK',
      payload: { images: [{ url: 'https://example.test/dog.png' }] },
    });
  });

  it('cancels a running request: the backend sees its call aborted', async () => {
    const { request_id } = await submitJson(fx.stack, `/${APP}`, { prompt: 'cancel me' });
    await eventually(async () => ((await status(request_id)).status === 'IN_PROGRESS' ? true : undefined));
    const cancel = await fx.stack.api(`/${APP}/requests/${request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    await eventually(async () =>
      fx.backend.aborted.some((b) => (b as { prompt?: string }).prompt === 'cancel me') ? true : undefined,
    );
    expect((await waitCompleted(fx.stack, APP, request_id)).error_type).toBe('cancelled');
  });
});
