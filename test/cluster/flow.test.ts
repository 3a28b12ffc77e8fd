import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFalClient } from '@fal-ai/client';
import { PNG } from 'pngjs';
import { createEsrganModel } from '../../src/models/builtin/esrgan';
import type { ClusterStoreEnv } from '../../src/cluster/store';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { pointFalAt } from '../fal-client/fal-hosts';
import { CLUSTER_KEY, eventually, startTestServices, suiteStore, type TestServices } from './services';

const run = promisify(execFile);
const ECHO = 'acme/echo';
const GATED = 'acme/gated';
const SEED = 'fal-ai/lora';
const ESRGAN = 'fal-ai/esrgan';
const ESRGAN_OPTIONS = { maxInputPixels: 16_384 };

/**
 * The production shape: Temporal server on PostgreSQL (4 shards, SQL visibility), SeaweedFS as the object
 * store, our API, a control worker and two model runner processes, each its own process and DATA_DIR.
 */
describe('the cluster topology: API, control worker and two model runners on a Temporal server with PostgreSQL', () => {
  const seedOutput = { images: [{ url: 'https://url.to/image.png', content_type: 'image/png' }], seed: 42 };
  let seedBackend: LoopbackServer;
  let gated: GatedBackend;
  let receiver: LoopbackServer;
  let services: TestServices;
  let store: ClusterStoreEnv;
  /** Webhook paths answered 500 on their first attempt. */
  const failOnce = new Set<string>();

  beforeAll(async () => {
    seedBackend = await startLoopbackServer(respondJson(200, seedOutput));
    gated = await startGatedBackend();
    receiver = await startLoopbackServer((req, _raw, res) => {
      const failNow = failOnce.delete(req.url);
      res.writeHead(failNow ? 500 : 200, { 'content-type': 'application/json' }).end('{}');
    });
    services = await startTestServices({
      legacySubmitModel: SEED,
      models: [
        { id: SEED, backend: { kind: 'http', url: `${seedBackend.url}/generate` } },
        { id: ECHO, backend: { kind: 'builtin', name: 'noop', options: { delayMs: 20 } } },
        { id: GATED, backend: { kind: 'http', url: gated.url }, concurrency: 1 },
        { id: ESRGAN, backend: { kind: 'builtin', name: 'esrgan', options: ESRGAN_OPTIONS } },
      ],
    });
    store = suiteStore();
  }, 240_000);
  afterAll(async () => {
    await services?.stop();
    await Promise.all([seedBackend?.close(), gated?.close(), receiver?.close()]);
  });

  const submit = async (path: string, body: unknown) => {
    const res = await services.call(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { request_id: string };
    expect(res.status).toBe(200);
    return json;
  };
  const statusOf = async (model: string, id: string) =>
    (await (await services.call(`/${model}/requests/${id}/status`)).json()) as Record<string, unknown>;
  const completed = (model: string, id: string) =>
    eventually(async () => {
      const s = await statusOf(model, id);
      return s.status === 'COMPLETED' ? s : undefined;
    });
  const hooksFor = (path: string) => receiver.requests.filter((r) => r.url === path);

  it('runs the seed walkthrough: legacy submit with fal_webhook, the OK body at the webhook', async () => {
    const path = '/seed/hook';
    const { request_id } = await submit(`/fal/queue/submit?fal_webhook=${encodeURIComponent(receiver.url + path)}`, {
      model_name: 'stabilityai/stable-diffusion-xl-base-1.0',
      prompt: 'Photo of a cute dog',
    });
    await eventually(async () => (hooksFor(path).length > 0 ? true : undefined));
    expect(hooksFor(path)[0]!.json).toMatchObject({ request_id, status: 'OK', payload: seedOutput });
    expect(seedBackend.requests.at(-1)!.json).toMatchObject({ prompt: 'Photo of a cute dog' });
  });

  it('serves the official @fal-ai/client: subscribe returns the model output', async () => {
    const fal = createFalClient({ credentials: CLUSTER_KEY, requestMiddleware: pointFalAt(services.apiUrl) });
    const result = await fal.subscribe(ECHO, { input: { hello: 'cluster' } });
    expect(result.requestId).toEqual(expect.any(String));
    expect(result.data).toMatchObject({ hello: 'cluster' });
  });

  it('runs an uploaded input file on a model runner; the URL the API hands out serves the runner’s output bytes', async () => {
    const png = new PNG({ width: 8, height: 6 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 37) % 256;
    const input = PNG.sync.write(png);
    // Uploaded as fal's client does it: initiate at the API, PUT to the presigned URL on the store.
    const fal = createFalClient({ credentials: CLUSTER_KEY, requestMiddleware: pointFalAt(services.apiUrl) });
    const imageUrl = await fal.storage.upload(new Blob([input], { type: 'image/png' }));
    expect(imageUrl.startsWith(`${store.S3_ENDPOINT}/`)).toBe(true);

    const { request_id } = await submit(`/${ESRGAN}`, { image_url: imageUrl, scale: 2 });
    await completed(ESRGAN, request_id);
    const res = await services.call(`/${ESRGAN}/requests/${request_id}`);
    const body = (await res.json()) as { image?: { url: string; width: number; height: number; file_size: number } };
    expect({ status: res.status, body }).toMatchObject({ status: 200, body: { image: { width: 16, height: 12 } } });
    expect(body.image!.url.startsWith(`${store.S3_ENDPOINT}/`)).toBe(true);

    // The same model run here, on the same bytes, is what the runner must have stored.
    let expected: Buffer | undefined;
    const controller = new AbortController();
    await createEsrganModel(ESRGAN_OPTIONS).run(
      { image_url: `data:image/png;base64,${input.toString('base64')}`, scale: 2 },
      {
        requestId: 'expected',
        signal: controller.signal,
        log: () => undefined,
        fetchInput: async () => ({ data: input, contentType: 'image/png' }),
        saveFile: async (file) => {
          expected = file.data;
          return {
            url: 'unused',
            content_type: file.contentType,
            file_name: file.fileName,
            file_size: file.data.length,
          };
        },
      },
    );
    const served = await fetch(body.image!.url);
    expect(served.status).toBe(200);
    const bytes = Buffer.from(await served.arrayBuffer());
    expect(bytes.length).toBe(body.image!.file_size);
    expect(bytes.equals(expected!)).toBe(true);
    // Neither file touched a process's disk: the control worker serves no model, and runners write to the store.
    for (const name of ['api', 'worker', 'runner-1', 'runner-2']) {
      const files = join(services.dataDir, 'services', name, 'files');
      expect({ name, files: existsSync(files) }).toEqual({ name, files: false });
    }
  });

  it('retries a webhook the receiver answered 500: the second attempt is accepted', async () => {
    const path = '/retry/hook';
    failOnce.add(path);
    const { request_id } = await submit(`/${ECHO}?fal_webhook=${encodeURIComponent(receiver.url + path)}`, { n: 1 });
    await eventually(async () => (hooksFor(path).length >= 2 ? true : undefined));
    const [first, second] = hooksFor(path);
    expect(first!.json).toMatchObject({ request_id, status: 'OK' });
    expect(second!.json).toEqual(first!.json);
    // Standard Webhooks: a retry is the same message, so it keeps its id.
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
  });

  it('cancels a queued request: it never reaches a model runner', async () => {
    // One slot per runner process (concurrency 1, the task-queue design): one blocker for each of the two.
    const blockers = [await submit(`/${GATED}`, { n: 'blocker-1' }), await submit(`/${GATED}`, { n: 'blocker-2' })];
    for (const blocker of blockers) {
      await eventually(async () =>
        (await statusOf(GATED, blocker.request_id)).status === 'IN_PROGRESS' ? true : undefined,
      );
    }
    const queued = await submit(`/${GATED}`, { n: 'cancel-me' });
    const cancel = await services.call(`/${GATED}/requests/${queued.request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    expect(await completed(GATED, queued.request_id)).toMatchObject({ error_type: 'cancelled' });
    gated.release();
    gated.release();
    for (const blocker of blockers) await completed(GATED, blocker.request_id);
    expect(gated.requests.map((r) => r.json)).not.toContainEqual({ n: 'cancel-me' });
  });

  it('answers an operator’s visibility query through our search attributes (temporal workflow list)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await submit(`/${ECHO}`, { visibility: i })).request_id);
    for (const id of ids) await completed(ECHO, id);
    const list = async (query: string) => {
      const { stdout } = await run(process.env.CLUSTER_TEMPORAL_CLI!, [
        'workflow',
        'list',
        '--address',
        process.env.CLUSTER_TEMPORAL_ADDRESS!,
        '--query',
        query,
        '--output',
        'json',
      ]);
      return stdout;
    };
    // SQL visibility is written asynchronously: the last state shows within a moment.
    const listed = await eventually(async () => {
      const out = await list(`FalModelId='${ECHO}' AND FalState='COMPLETED' AND FalOwner='alice'`);
      return ids.every((id) => out.includes(id)) ? out : undefined;
    }, 30_000);
    expect(listed).toContain('FalModelId');
    const none = await list(`FalModelId='${ECHO}' AND FalState='IN_QUEUE'`);
    for (const id of ids) expect(none).not.toContain(id);
  });
});
