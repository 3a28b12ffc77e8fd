import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { TileProgress } from '../../src/models/builtin/esrgan';
import type { ModelContext } from '../../src/models/types';
import { useStack } from '../helpers/fixtures';
import { Gate } from '../helpers/gate';
import { eventually, submitJson, waitCompleted } from '../helpers/stack';

const APP = 'fal-ai/esrgan';

function noisePng(width: number, height: number): string {
  const png = new PNG({ width, height });
  for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 7919) % 251;
  return `data:image/png;base64,${PNG.sync.write(png).toString('base64')}`;
}

/**
 * The runs here are held at a known tile by a gate (the model's code-only `beforeTile` hook), so "while it runs"
 * means the same on any CPU: a fast machine cannot finish a run before the test has looked at it.
 */
describe('a built-in model (backend kind "builtin": ESRGAN in the worker process)', () => {
  /** Every tile the model was about to compute, in order, across the file's runs. */
  const tiles: { requestId: string; done: number; total: number }[] = [];
  /** What the current test does at each tile; by default nothing (the run goes at full speed). */
  let atTile: (progress: TileProgress, ctx: ModelContext) => Promise<void> = async () => undefined;

  const fx = useStack({
    models: () => ({ models: [{ id: APP, backend: { kind: 'builtin', name: 'esrgan' }, concurrency: 1 }] }),
    runnerOptions: {
      builtinHooks: {
        esrgan: {
          beforeTile: (progress, ctx) => {
            tiles.push({ requestId: ctx.requestId, done: progress.done, total: progress.total });
            return atTile(progress, ctx);
          },
        },
      },
    },
  });

  const status = async (id: string) => {
    const res = await fx.stack.api(`/${APP}/requests/${id}/status?logs=1`);
    return (await res.json()) as { status: string; logs: { message: string }[] };
  };
  const storedFiles = () => {
    const dir = join(fx.stack.config.dataDir, 'files');
    return existsSync(dir) ? readdirSync(dir).length : 0;
  };
  const isTileLog = (l: { message: string }) => /^tile \d+\/\d+/.test(l.message);

  it('upscales an image: progress in the logs while it runs, the PNG stored with its size, and the webhook', async () => {
    // Held halfway: the run has logged several `tile n/m` lines and cannot end until the gate opens.
    const halfway = new Gate();
    atTile = (p, ctx) => (p.done === Math.floor(p.total / 2) ? halfway.pass(ctx.signal) : Promise.resolve());
    const hook = encodeURIComponent(`${fx.receiver.url}/hook`);
    const { request_id } = await submitJson(fx.stack, `/${APP}?fal_webhook=${hook}`, { image_url: noisePng(40, 30) });
    await halfway.reached;
    const running = await eventually(async () => {
      const s = await status(request_id);
      return s.status === 'IN_PROGRESS' && s.logs.some(isTileLog) ? s : undefined;
    });
    expect(running.logs.map((l) => l.message)).toContain('upscaling 40x30 -> 80x60');
    halfway.open();

    const done = await waitCompleted(fx.stack, APP, request_id, 90_000);
    expect(done.error).toBeUndefined();
    const result = (await (await fx.stack.api(`/${APP}/requests/${request_id}`)).json()) as {
      image: { url: string; content_type: string; width: number; height: number; file_size: number };
    };
    expect(result.image).toMatchObject({ content_type: 'image/png', width: 80, height: 60 });
    const png = PNG.sync.read(Buffer.from(await (await fetch(result.image.url)).arrayBuffer()));
    expect([png.width, png.height]).toEqual([80, 60]);
    const delivered = await eventually(async () =>
      fx.receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: result });
  });

  it('stops a running upscale when the request is cancelled: the model gives up its slot and stores nothing', async () => {
    const filesBefore = storedFiles();
    // Held once it has logged progress; the gate lets it through only when its cancellation signal fires.
    const held = new Gate();
    atTile = (p, ctx) => (p.done === Math.floor(p.total / 2) ? held.pass(ctx.signal) : Promise.resolve());
    const big = await submitJson(fx.stack, `/${APP}`, { image_url: noisePng(40, 30) });
    await held.reached;
    await eventually(async () => ((await status(big.request_id)).logs.some(isTileLog) ? true : undefined));
    const cancel = await fx.stack.api(`/${APP}/requests/${big.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    expect((await waitCompleted(fx.stack, APP, big.request_id)).error_type).toBe('cancelled');

    // One run at a time (the model's only runner slot is held until the cancelled run returns): the next request
    // starts only once the cancelled run has really stopped.
    atTile = async () => undefined;
    const next = await submitJson(fx.stack, `/${APP}`, { image_url: noisePng(8, 8) });
    await waitCompleted(fx.stack, APP, next.request_id, 60_000);
    const order = tiles.filter((t) => t.requestId === big.request_id || t.requestId === next.request_id);
    const bigTiles = order.filter((t) => t.requestId === big.request_id);
    // The cancelled run computed no tile after the one it was held at, and the next run came after all of it.
    expect(bigTiles.at(-1)).toMatchObject({ done: Math.floor(bigTiles[0]!.total / 2) });
    expect(order.findIndex((t) => t.requestId === next.request_id)).toBe(bigTiles.length);
    // Only the small image's output was stored; the cancelled run never got to save one.
    expect(storedFiles()).toBe(filesBefore + 1);
  });
});
