import { createHash } from 'node:crypto';
import { ApiError, ValidationError, createFalClient, type FalClient } from '@fal-ai/client';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { OTHER_KEY, eventually, startStack, waitCompleted, type Stack } from '../helpers/stack';
import { falClientFor, pointFalAt } from './fal-hosts';

const ECHO = 'acme/echo';
const SLOW = 'acme/slow';

/**
 * A model backend that echoes its input, fails on request, and — given an `image_url` — downloads it
 * and reports what it got, as a real image model would.
 */
async function startEchoBackend(): Promise<LoopbackServer> {
  return startLoopbackServer(async (rec, _raw, res) => {
    const body = rec.json as Record<string, unknown>;
    const reply = (status: number, json: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    };
    if (body.fail === 'validation') {
      return reply(422, { detail: [{ loc: ['body', 'prompt'], msg: 'field required', type: 'value_error.missing' }] });
    }
    if (body.fail === 'reject') return reply(400, { detail: 'this backend rejects it' });
    if (typeof body.image_url === 'string') {
      const download = await fetch(body.image_url);
      const bytes = Buffer.from(await download.arrayBuffer());
      return reply(200, {
        image: {
          url: body.image_url,
          status: download.status,
          content_type: download.headers.get('content-type'),
          size: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
        },
      });
    }
    return reply(200, { echoed: body });
  });
}

describe('@fal-ai/client fal.run, storage uploads and errors against our stack', () => {
  let echo: LoopbackServer;
  let gated: GatedBackend;
  let stack: Stack;
  let fal: FalClient;

  beforeAll(async () => {
    echo = await startEchoBackend();
    gated = await startGatedBackend();
    stack = await startStack({
      models: {
        models: [
          { id: ECHO, backend: { kind: 'http', url: echo.url }, concurrency: 4 },
          { id: SLOW, backend: { kind: 'http', url: gated.url }, concurrency: 1 },
        ],
      },
    });
    fal = falClientFor(stack);
  });
  afterAll(async () => {
    await stack?.stop();
    await echo?.close();
    await gated?.close();
  });

  it('fal.run submits, waits and returns the output with the request id of a real, completed request', async () => {
    const result = await fal.run(ECHO, { input: { say: 'hi' } });
    expect(result.data).toEqual({ echoed: { say: 'hi' } });
    const status = await waitCompleted(stack, ECHO, result.requestId);
    expect(status).toMatchObject({ status: 'COMPLETED', request_id: result.requestId });
  });

  it('fal.run whose caller goes away cancels the request: the runner is told to stop', async () => {
    const abort = new AbortController();
    const running = fal.run(SLOW, { input: { n: 'walk-away' }, abortSignal: abort.signal });
    await gated.nth(1);
    abort.abort();
    await expect(running).rejects.toThrow();
    await eventually(async () => (gated.aborted.some((b) => (b as { n?: string }).n === 'walk-away') ? 1 : undefined));
  });

  it('uploads a Blob input through the storage API and hands the model a URL serving the same bytes', async () => {
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));
    const result = await fal.run(ECHO, { input: { image_url: new Blob([bytes], { type: 'image/png' }) } });
    const image = (result.data as { image: Record<string, unknown> }).image;
    expect(image).toEqual({
      url: expect.stringMatching(new RegExp(`^${stack.url}/files/[0-9a-f-]{36}/`)),
      status: 200,
      content_type: 'image/png',
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });

    const url = await fal.storage.upload(new Blob(['plain text'], { type: 'text/plain' }));
    const download = await fetch(url);
    expect(download.headers.get('content-type')).toBe('text/plain');
    expect(await download.text()).toBe('plain text');
  });

  it('a model rejecting its input surfaces as ValidationError 422 with pydantic field errors (run and subscribe)', async () => {
    const fromRun = await fal.run(ECHO, { input: { fail: 'validation' } }).catch((e: unknown) => e);
    expect(fromRun).toBeInstanceOf(ValidationError);
    const error = fromRun as ValidationError;
    expect(error.status).toBe(422);
    expect(error.body).toEqual({
      detail: [{ loc: ['body', 'prompt'], msg: 'field required', type: 'value_error.missing' }],
      error_type: 'validation_error',
    });
    expect(error.getFieldErrors('prompt')).toHaveLength(1);
    expect(error.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const fromSubscribe = await fal.subscribe(ECHO, { input: { fail: 'validation' } }).catch((e: unknown) => e);
    expect(fromSubscribe).toBeInstanceOf(ValidationError);
    expect((fromSubscribe as ValidationError).fieldErrors).toEqual(error.fieldErrors);
  });

  it('a failed run surfaces as ApiError 500 with detail and error_type', async () => {
    const error = await fal.subscribe(ECHO, { input: { fail: 'reject' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).not.toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({
      status: 500,
      body: { detail: expect.stringContaining('this backend rejects it'), error_type: 'runner_error' },
    });
  });

  it('client mistakes surface as ApiError / ValidationError with our status and body', async () => {
    const unknownModel = await fal.queue.submit('acme/nope', { input: {} }).catch((e: unknown) => e);
    expect(unknownModel).toBeInstanceOf(ApiError);
    expect(unknownModel).toMatchObject({ status: 404, body: { detail: 'Model acme/nope not found' } });

    const badWebhook = await fal.queue.submit(ECHO, { input: {}, webhookUrl: 'ftp://x' }).catch((e: unknown) => e);
    expect(badWebhook).toBeInstanceOf(ValidationError);
    expect((badWebhook as ValidationError).fieldErrors[0]?.loc).toEqual(['query', 'fal_webhook']);

    const badKey = createFalClient({ credentials: 'test-key:wrong', requestMiddleware: pointFalAt(stack.url) });
    const unauthorised = await badKey.queue.submit(ECHO, { input: {} }).catch((e: unknown) => e);
    expect(unauthorised).toMatchObject({ name: 'ApiError', status: 401, body: { detail: 'Invalid API key' } });

    const { request_id: requestId } = await fal.queue.submit(ECHO, { input: { mine: true } });
    const other = falClientFor(stack, OTHER_KEY);
    const notYours = await other.queue.status(ECHO, { requestId }).catch((e: unknown) => e);
    expect(notYours).toBeInstanceOf(ApiError);
    expect(notYours).toMatchObject({ status: 404 });
    const notYourResult = await other.queue.result(ECHO, { requestId }).catch((e: unknown) => e);
    expect(notYourResult).toMatchObject({ status: 404 });
  });
});
