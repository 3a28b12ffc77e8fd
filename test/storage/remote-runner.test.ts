import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { falClientFor } from '../fal-client/fal-hosts';
import { startSeaweedFs, type SeaweedFs } from '../helpers/seaweedfs';
import { eventually, startStack, type Stack } from '../helpers/stack';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process';

const MODELS = { models: [{ id: 'fal-ai/esrgan', backend: { kind: 'builtin', name: 'esrgan' } }] };

/**
 * A model runner on "another host": its own process and its own empty DATA_DIR, sharing only the Temporal address
 * and the store settings with the API. No PUBLIC_BASE_URL and no egress allow-list: the uploaded input is read from
 * the store directly, the output goes to the store, and the API (which never saw either file) answers the result.
 */
describe('a runner on another host, with the s3 store', () => {
  let weed: SeaweedFs;
  let stack: Stack;
  let runner: WorkerProcess | undefined;
  let runnerDataDir: string;

  beforeAll(async () => {
    weed = await startSeaweedFs();
    const storeEnv = await weed.bucket(`remote-${randomUUID().slice(0, 8)}`);
    // The API process runs the control worker only; no model is served here.
    stack = await startStack({ models: MODELS, env: { ...storeEnv, WORKER_MODELS: '' } });
    runnerDataDir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'runner-'));
    runner = spawnWorker(
      {
        ...stack.workerEnv,
        DATA_DIR: runnerDataDir,
        WORKER_CONTROL: 'false',
        WORKER_MODELS: 'fal-ai/esrgan',
        PUBLIC_BASE_URL: '',
        EGRESS_ALLOW: '',
      },
      MODELS,
      runnerDataDir,
    );
    await runner.ready;
  }, 300_000);

  afterAll(async () => {
    runner?.child.kill('SIGTERM');
    await runner?.exited;
    await stack?.stop();
    await weed?.stop();
  });

  it('runs a request whose input is an uploaded file and whose output is a file; the API serves the result', async () => {
    const png = new PNG({ width: 8, height: 6 });
    png.data.fill(180);
    const fal = falClientFor(stack);
    const imageUrl = await fal.storage.upload(new Blob([PNG.sync.write(png)], { type: 'image/png' }));
    expect(imageUrl.startsWith(`${weed.endpoint}/`)).toBe(true);

    const submit = await stack.api('/fal-ai/esrgan', {
      method: 'POST',
      body: JSON.stringify({ image_url: imageUrl, scale: 2 }),
      headers: { 'content-type': 'application/json' },
    });
    expect(submit.status).toBe(200);
    const { request_id: id } = (await submit.json()) as { request_id: string };
    const result = await eventually(async () => {
      const res = await stack.api(`/fal-ai/esrgan/requests/${id}`);
      return res.status === 400 ? undefined : res;
    }, 240_000);
    const body = (await result.json()) as { image?: { url: string; width: number; height: number } };
    expect({ status: result.status, runnerOutput: runner!.output().slice(-2000), body }).toMatchObject({
      status: 200,
      body: { image: { width: 16, height: 12 } },
    });
    const served = await fetch(body.image!.url);
    expect(served.status).toBe(200);
    const output = PNG.sync.read(Buffer.from(await served.arrayBuffer()));
    expect([output.width, output.height]).toEqual([16, 12]);
    // Nothing of it is on the runner's disk, nor on the API's.
    expect(readdirSync(runnerDataDir).filter((name) => name === 'files')).toEqual([]);
    expect(readdirSync(stack.config.dataDir).filter((name) => name === 'files')).toEqual([]);
  }, 300_000);
});
