import { PNG } from 'pngjs';
import { startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

function gradientPng(width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      png.data[i] = (x * 255) / width;
      png.data[i + 1] = (y * 255) / height;
      png.data[i + 2] = 128;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

describe('the built-in ESRGAN model (fal-ai/esrgan) over HTTP', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      models: { models: [{ id: 'fal-ai/esrgan', backend: { kind: 'builtin', name: 'esrgan' } }] },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('turns an image into a downloadable PNG twice its size, described truthfully', async () => {
    const image_url = `data:image/png;base64,${gradientPng(32, 24).toString('base64')}`;
    const { request_id } = await submitJson(stack, '/fal-ai/esrgan', { image_url });
    const status = await waitCompleted(stack, 'fal-ai/esrgan', request_id, 90_000);
    expect(status.error).toBeUndefined();
    expect((status.logs as { message: string }[]).map((l) => l.message).join('\n')).toMatch(/32x24/);

    const result = await stack.api(`/fal-ai/esrgan/requests/${request_id}`);
    expect(result.status).toBe(200);
    const { image } = (await result.json()) as {
      image: { url: string; content_type: string; file_name: string; file_size: number; width: number; height: number };
    };
    expect(image).toMatchObject({ content_type: 'image/png', width: 64, height: 48 });
    expect(image.url.startsWith(`${stack.url}/files/`)).toBe(true);

    const download = await fetch(image.url);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.length).toBe(image.file_size);
    const png = PNG.sync.read(bytes);
    expect([png.width, png.height]).toEqual([64, 48]);
  });

  it('ends with a 422 naming the limit when the image is too large', async () => {
    const image_url = `data:image/png;base64,${gradientPng(200, 200).toString('base64')}`;
    const { request_id } = await submitJson(stack, '/fal-ai/esrgan', { image_url });
    await waitCompleted(stack, 'fal-ai/esrgan', request_id);
    const result = await stack.api(`/fal-ai/esrgan/requests/${request_id}`);
    expect(result.status).toBe(422);
    const body = (await result.json()) as { detail: { loc: string[]; msg: string }[] };
    expect(body.detail[0]?.loc).toEqual(['body', 'image_url']);
    expect(body.detail[0]?.msg).toMatch(/200x200.*at most 16384 pixels/);
  });
});
