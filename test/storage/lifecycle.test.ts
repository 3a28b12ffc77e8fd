import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { PNG } from 'pngjs';
import { ensureFileSweeper, fileSweeperScheduleId } from '../../src/client/file-sweeper';
import { LocalFileStore } from '../../src/storage/local-file-store';
import { falClientFor } from '../fal-client/fal-hosts';
import { eventually, startStack, type Stack } from '../helpers/stack';

function smallPng(width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data.fill(200);
  return PNG.sync.write(png);
}

describe('object lifecycle: stored files expire, answer 404 and leave the disk', () => {
  let stack: Stack;
  let temporal: Client;

  beforeAll(async () => {
    stack = await startStack({
      models: { models: [{ id: 'fal-ai/esrgan', backend: { kind: 'builtin', name: 'esrgan' } }] },
      env: { FILE_SWEEP_INTERVAL_MS: '1000', INPUT_MAX_BYTES: '200000' },
    });
    temporal = new Client({ connection: await Connection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! }) });
  });
  afterAll(async () => {
    // The schedule outlives workers by design; this suite's task queue is gone after it, so is its sweeper.
    await temporal?.schedule
      .getHandle(fileSweeperScheduleId(stack.config.temporal.taskQueue))
      .delete()
      .catch(() => undefined);
    await temporal?.connection.close();
    await stack?.stop();
  });

  const folderOf = (url: string) => join(stack.config.dataDir, 'files', new URL(url).pathname.split('/')[2]!);
  const statusOf = async (url: string) => (await fetch(url)).status;

  it('an upload stored with a 2-second lifecycle is served, then 404, then gone from disk', async () => {
    const initiate = await stack.api('/storage/upload/initiate?storage_type=fal-cdn-v3', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-fal-object-lifecycle': JSON.stringify({ expiration_duration_seconds: 2 }),
      },
      body: JSON.stringify({ content_type: 'text/plain', file_name: 'note.txt' }),
    });
    expect(initiate.status).toBe(200);
    const { upload_url, file_url } = (await initiate.json()) as { upload_url: string; file_url: string };
    // Not served before its bytes arrive; the upload URL needs no API key, only its token.
    expect(await statusOf(file_url)).toBe(404);
    // Taken before the upload: its lifetime starts during the PUT, so it cannot end less than 2 s after this.
    const storedAt = Date.now();
    const put = await fetch(upload_url, {
      method: 'PUT',
      body: 'expiring soon',
      headers: { 'content-type': 'text/plain' },
    });
    expect(put.status).toBe(200);

    const served = await fetch(file_url);
    expect(served.status).toBe(200);
    expect(await served.text()).toBe('expiring soon');
    expect(served.headers.get('cache-control')).toMatch(/max-age=[0-2]$/);
    expect(existsSync(folderOf(file_url))).toBe(true);

    await eventually(async () => ((await statusOf(file_url)) === 404 ? 1 : undefined), 30_000, 100);
    // A lower bound only: a slow machine makes the 404 later, never earlier.
    expect(Date.now() - storedAt).toBeGreaterThanOrEqual(2000);
    // The sweeper schedule (every second here) deletes the bytes.
    await eventually(async () => (existsSync(folderOf(file_url)) ? undefined : 1), 30_000, 200);

    const again = await fetch(upload_url, { method: 'PUT', body: 'resurrect' });
    expect(again.status).toBe(404);
  });

  it('outputs of a request sent with x-fal-object-lifecycle-preference expire on that schedule', async () => {
    const LIFETIME_S = 15;
    const fal = falClientFor(stack);
    const submittedAt = Date.now();
    const result = await fal.subscribe('fal-ai/esrgan', {
      input: { image_url: new Blob([smallPng(8, 8)], { type: 'image/png' }) },
      storageSettings: { expiresIn: LIFETIME_S },
    });
    const resultAt = Date.now();
    const { image } = result.data as { image: { url: string; width: number } };
    expect(image.width).toBe(16);
    // The output's lifetime starts when the run stores it, somewhere between submit and result. It is long enough that
    // the sweeper (real clock, every second) cannot delete the file before the result is read (2 s could, on a loaded
    // machine), and the schedule is checked on the store's own record, through a store whose clock stands still at
    // the submit.
    const [, , id, name] = new URL(image.url).pathname.split('/');
    const frozen = new LocalFileStore(join(stack.config.dataDir, 'files'), stack.url, { now: () => submittedAt });
    const stored = await frozen.read(id!, decodeURIComponent(name!));
    expect(stored?.contentType).toBe('image/png');
    expect(stored!.expiresAt!.getTime()).toBeGreaterThanOrEqual(submittedAt + LIFETIME_S * 1000);
    expect(stored!.expiresAt!.getTime()).toBeLessThanOrEqual(resultAt + LIFETIME_S * 1000);

    await eventually(async () => ((await statusOf(image.url)) === 404 ? 1 : undefined), 60_000, 200);
    await eventually(async () => (existsSync(folderOf(image.url)) ? undefined : 1), 30_000, 200);
  }, 120_000);

  it('the sweeper schedule exists once per task queue; creating it again updates it instead of failing', async () => {
    const taskQueue = stack.config.temporal.taskQueue;
    const handle = temporal.schedule.getHandle(fileSweeperScheduleId(taskQueue));
    expect((await handle.describe()).spec.intervals?.[0]?.every).toBe(1000);
    await ensureFileSweeper(temporal, { taskQueue, everyMs: 3000 });
    expect((await handle.describe()).spec.intervals?.[0]?.every).toBe(3000);
    await ensureFileSweeper(temporal, { taskQueue, everyMs: 1000 });
    expect((await handle.describe()).action).toMatchObject({ workflowType: 'fileSweep', taskQueue });
  });

  it('refuses uploads without a key, with a wrong token, or over the size limit', async () => {
    const anonymous = await stack.api('/storage/upload/initiate', {
      method: 'POST',
      key: null,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content_type: 'text/plain', file_name: 'x.txt' }),
    });
    expect(anonymous.status).toBe(401);

    const initiate = await stack.api('/storage/upload/initiate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content_type: 'text/plain', file_name: 'x.txt' }),
    });
    const { upload_url } = (await initiate.json()) as { upload_url: string };
    const forged = new URL(upload_url);
    forged.searchParams.set('token', 'guessed');
    expect((await fetch(forged, { method: 'PUT', body: 'x' })).status).toBe(404);

    const tooBig = await fetch(upload_url, { method: 'PUT', body: Buffer.alloc(stack.config.inputs.maxBytes + 1) });
    expect(tooBig.status).toBe(413);
  });
});
