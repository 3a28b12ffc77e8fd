import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { PNG } from 'pngjs';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import {
  PROJECT_ROOT,
  ensurePythonEnv,
  freePort,
  startProcess,
  type PythonEnv,
  type RunningProcess,
} from '../helpers/python-env';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

/** Cog's Python package and its server (coglet), pinned together. */
const COG_PACKAGES = ['cog==0.23.1', 'coglet==0.23.1'];
const PREDICTOR_DIR = join(__dirname, 'cog-predictor');
const FILE_PREDICTOR_DIR = join(__dirname, 'cog-file-predictor');
const APP = 'acme/cog-shout';
const BUSY_APP = 'acme/cog-shout-twice';

interface FileOutput {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width?: number;
  height?: number;
}

describe('a Cog model (backend kind "cog") run by a real Cog server', () => {
  let cog: RunningProcess;
  let stack: Stack;
  let receiver: LoopbackServer;
  let markerDir: string;
  let python: PythonEnv;
  const startCogServer = (env: PythonEnv, port: number, args: string[] = [], cwd = PREDICTOR_DIR) =>
    startProcess(env.python, ['-m', 'cog.server.http', '--host', '127.0.0.1', ...args], {
      cwd,
      env: {
        ...process.env,
        // Cog's server starts its predictor subprocess as `python` from PATH.
        PATH: `${env.binDir}${delimiter}${process.env.PATH ?? ''}`,
        PORT: String(port),
        COG_PREDICT_TYPE_STUB: 'predict.py:Runner',
        COG_TEST_MARKER_DIR: markerDir,
        PYTHONDONTWRITEBYTECODE: '1',
      },
    });

  beforeAll(async () => {
    // First run: a venv with cog from PyPI (about 20 MB); later runs reuse it.
    python = await ensurePythonEnv({ dir: join(PROJECT_ROOT, '.venv', 'cog'), packages: COG_PACKAGES });
    markerDir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? tmpdir(), 'cog-markers-'));
    const port = await freePort();
    cog = startCogServer(python, port);
    await cog.waitFor(/now accepting requests/, 60_000);
    receiver = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({
      models: {
        models: [
          { id: APP, backend: { kind: 'cog', url: `http://127.0.0.1:${port}` }, heartbeatTimeoutSeconds: 10 },
          // The same one-slot Cog server, but two runs at once from our side.
          {
            id: BUSY_APP,
            backend: { kind: 'cog', url: `http://127.0.0.1:${port}` },
            concurrency: 'unlimited',
            runnerConcurrency: 2,
          },
        ],
      },
    });
  }, 10 * 60_000);
  afterAll(async () => {
    await stack?.stop();
    await receiver?.close();
    await cog?.stop();
  });

  const status = async (id: string) => {
    const res = await stack.api(`/${APP}/requests/${id}/status?logs=1`);
    return (await res.json()) as { status: string; logs?: { message: string }[]; error_type?: string };
  };
  const hookFor = (id: string) =>
    eventually(async () => receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === id));

  it('runs a prediction: logs while it runs, the output with its image stored, and the webhook', async () => {
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, {
      text: 'hello',
      steps: 8,
      step_seconds: 0.4,
      width: 5,
      height: 3,
    });
    // Cog's log webhooks reach the status while the predictor is still stepping.
    const running = await eventually(async () => {
      const s = await status(request_id);
      return s.status === 'IN_PROGRESS' && s.logs?.some((l) => l.message === 'step 2/8') ? s : undefined;
    }, 20_000);
    expect(running.logs?.map((l) => l.message)).not.toContain('step 8/8');

    const done = await waitCompleted(stack, APP, request_id);
    expect(done.error).toBeUndefined();
    const messages = (done.logs as { message: string }[]).map((l) => l.message);
    expect(messages.filter((m) => /^step \d\/8$/.test(m))).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => `step ${n}/8`));

    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(result.status).toBe(200);
    const output = (await result.json()) as { text: string; image: FileOutput };
    expect(output.text).toBe('HELLO');
    expect(output.image).toEqual({
      url: expect.stringMatching(new RegExp(`^${stack.url}/files/`)),
      content_type: 'image/png',
      file_name: 'image.png',
      file_size: expect.any(Number),
      width: 5,
      height: 3,
    });
    const download = await fetch(output.image.url);
    expect(download.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.length).toBe(output.image.file_size);
    const png = PNG.sync.read(bytes);
    expect([png.width, png.height]).toEqual([5, 3]);

    const delivered = await hookFor(request_id);
    expect(delivered.json).toMatchObject({ status: 'OK', payload: output });
  });

  it('cancels a running prediction: the predictor itself sees the cancellation', async () => {
    const { request_id } = await submitJson(stack, `/${APP}`, { text: 'cancel-me', steps: 60, step_seconds: 0.5 });
    await eventually(async () =>
      (await status(request_id)).logs?.some((l) => l.message === 'step 2/60') ? true : undefined,
    );

    const cancel = await stack.api(`/${APP}/requests/${request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    const marker = join(markerDir, 'cancel-me.cancelled');
    await eventually(async () => (existsSync(marker) ? true : undefined), 15_000);
    expect(readFileSync(marker, 'utf8')).toMatch(/^cancelled at step \d+/);
    expect((await waitCompleted(stack, APP, request_id)).error_type).toBe('cancelled');

    // The Cog server's single slot is free again: the next prediction runs at once.
    const next = await submitJson(stack, `/${APP}`, { text: 'after', steps: 1, step_seconds: 0 });
    expect((await waitCompleted(stack, APP, next.request_id, 15_000)).error).toBeUndefined();
  });

  it('waits for a free slot when the Cog server is busy, then runs', async () => {
    const first = await submitJson(stack, `/${BUSY_APP}`, { text: 'one', steps: 8, step_seconds: 0.4 });
    await eventually(async () => {
      const res = await stack.api(`/${BUSY_APP}/requests/${first.request_id}/status?logs=1`);
      const body = (await res.json()) as { logs: { message: string }[] };
      return body.logs.some((l) => l.message === 'step 1/8') ? true : undefined;
    });
    // The Cog server's one slot is taken: this run finds it busy (Cog's 409) and waits instead of failing.
    const second = await submitJson(stack, `/${BUSY_APP}`, { text: 'two', steps: 1, step_seconds: 0 });
    const [a, b] = await Promise.all([
      waitCompleted(stack, BUSY_APP, first.request_id),
      waitCompleted(stack, BUSY_APP, second.request_id),
    ]);
    expect([a.error, b.error]).toEqual([undefined, undefined]);
    expect((b.logs as { message: string }[]).map((l) => l.message)).toEqual(
      expect.arrayContaining(['Cog server busy (every prediction slot in use): waiting for a free slot', 'step 1/1']),
    );
    expect(await (await stack.api(`/${BUSY_APP}/requests/${second.request_id}`)).json()).toMatchObject({ text: 'TWO' });
  });

  it("turns Cog's 422 into fal's validation error, naming the field, without retrying", async () => {
    const { request_id } = await submitJson(stack, `/${APP}`, { steps: 500 });
    await waitCompleted(stack, APP, request_id);
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(result.status).toBe(422);
    const body = (await result.json()) as { detail: { loc: string[]; msg: string; type: string }[] };
    expect(body.detail).toEqual(
      expect.arrayContaining([
        { loc: ['body', 'text'], msg: expect.stringMatching(/required/i), type: 'value_error.missing' },
        { loc: ['body', 'steps'], msg: expect.stringContaining('500'), type: expect.any(String) },
      ]),
    );
  });

  it("reports a failed prediction as a runner error carrying Cog's message", async () => {
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { text: 'fail' });
    const done = await waitCompleted(stack, APP, request_id);
    expect(done).toMatchObject({ error_type: 'runner_error', error: expect.stringContaining('asked to fail') });
    expect((await hookFor(request_id)).json).toMatchObject({ status: 'ERROR' });
  });

  it('stores outputs that a Cog server started with --upload-url returns as URLs', async () => {
    // A stand-in for the object store Cog uploads to: PUT stores the bytes, GET serves them.
    const uploaded = new Map<string, { type: string; data: Buffer }>();
    const store = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'PUT') {
          uploaded.set(req.url!, { type: req.headers['content-type'] ?? '', data: Buffer.concat(chunks) });
          res.writeHead(201).end();
        } else {
          const file = uploaded.get(req.url!);
          if (file) res.writeHead(200, { 'content-type': file.type }).end(file.data);
          else res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((r) => store.listen(0, '127.0.0.1', () => r()));
    const storeUrl = `http://127.0.0.1:${(store.address() as AddressInfo).port}`;
    const port = await freePort();
    // Cog uploads only a file that is the whole output (or an iterator's item); files inside an
    // object output stay data URIs. Hence a second model, whose output is one image.
    const uploading = startCogServer(python, port, ['--upload-url', `${storeUrl}/upload/`], FILE_PREDICTOR_DIR);
    const app = 'acme/cog-uploads';
    const other = await startStack({
      models: { models: [{ id: app, backend: { kind: 'cog', url: `http://127.0.0.1:${port}` } }] },
    });
    try {
      await uploading.waitFor(/now accepting requests/, 60_000);
      const { request_id } = await submitJson(other, `/${app}`, { width: 4, height: 6 });
      expect((await waitCompleted(other, app, request_id)).error).toBeUndefined();
      const output = (await (await other.api(`/${app}/requests/${request_id}`)).json()) as FileOutput;
      expect([...uploaded.keys()]).toEqual(['/upload/drawing.png']);
      // Not the object store's URL: the file was copied into our own store.
      expect(output).toMatchObject({ content_type: 'image/png', file_name: 'drawing.png', width: 4, height: 6 });
      expect(output.url.startsWith(`${other.url}/files/`)).toBe(true);
      const bytes = Buffer.from(await (await fetch(output.url)).arrayBuffer());
      expect(bytes.equals([...uploaded.values()][0]!.data)).toBe(true);
    } finally {
      await other.stop();
      await uploading.stop();
      store.closeAllConnections();
      await new Promise<void>((r) => store.close(() => r()));
    }
  });
});
