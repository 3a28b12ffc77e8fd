import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const APP = 'fal-ai/esrgan';

function noisePng(width: number, height: number): string {
  const png = new PNG({ width, height });
  for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 7919) % 251;
  return `data:image/png;base64,${PNG.sync.write(png).toString('base64')}`;
}

describe('a built-in model (backend kind "builtin": ESRGAN in the worker process)', () => {
  let receiver: LoopbackServer;
  let stack: Stack;

  beforeAll(async () => {
    receiver = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({
      models: { models: [{ id: APP, backend: { kind: 'builtin', name: 'esrgan' }, concurrency: 1 }] },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  const status = async (id: string) => {
    const res = await stack.api(`/${APP}/requests/${id}/status?logs=1`);
    return (await res.json()) as { status: string; logs: { message: string }[] };
  };
  const storedFiles = () => readdirSync(join(stack.config.dataDir, 'files')).length;

  it('upscales an image: progress in the logs while it runs, the PNG stored with its size, and the webhook', async () => {
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { image_url: noisePng(40, 30) });
    const running = await eventually(async () => {
      const s = await status(request_id);
      return s.status === 'IN_PROGRESS' && s.logs.some((l) => /^tile \d+\/\d+/.test(l.message)) ? s : undefined;
    }, 60_000);
    expect(running.logs.map((l) => l.message)).toContain('upscaling 40x30 -> 80x60');

    const done = await waitCompleted(stack, APP, request_id, 90_000);
    expect(done.error).toBeUndefined();
    const result = (await (await stack.api(`/${APP}/requests/${request_id}`)).json()) as {
      image: { url: string; content_type: string; width: number; height: number; file_size: number };
    };
    expect(result.image).toMatchObject({ content_type: 'image/png', width: 80, height: 60 });
    const png = PNG.sync.read(Buffer.from(await (await fetch(result.image.url)).arrayBuffer()));
    expect([png.width, png.height]).toEqual([80, 60]);
    const delivered = await eventually(async () =>
      receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: result });
  });

  it('stops a running upscale when the request is cancelled: the model gives up its slot and stores nothing', async () => {
    const filesBefore = storedFiles();
    // 128x128 takes tens of seconds on a small CPU; the cancellation comes after the first tiles.
    const big = await submitJson(stack, `/${APP}`, { image_url: noisePng(128, 128) });
    await eventually(
      async () =>
        (await status(big.request_id)).logs.some((l) => /^tile \d+\/\d+/.test(l.message)) ? true : undefined,
      60_000,
    );
    const cancel = await stack.api(`/${APP}/requests/${big.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    expect((await waitCompleted(stack, APP, big.request_id)).error_type).toBe('cancelled');

    // One run at a time: the next request can only start once the cancelled run has really stopped.
    const started = Date.now();
    const next = await submitJson(stack, `/${APP}`, { image_url: noisePng(8, 8) });
    await waitCompleted(stack, APP, next.request_id, 60_000);
    expect(Date.now() - started).toBeLessThan(15_000);
    // Only the small image's output was stored; the cancelled run never got to save one.
    expect(storedFiles()).toBe(filesBefore + 1);
  });
});
