import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { falClientFor } from '../fal-client/fal-hosts';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { startSeaweedFs, type SeaweedFs } from '../helpers/seaweedfs';
import { eventually, startStack, type Stack } from '../helpers/stack';
import { verifyFal } from '../webhooks/verify';

const SEED = '196619188014358661';
const NEGATIVE = '-1234567890123456789';
/** What the backend answers for `mode: numbers`: every kind of number a double would change. */
const NUMBERS_OUTPUT = `{"seed":${SEED},"neg":${NEGATIVE},"z":-0,"d":0.1000000000000000000001,"n":[${SEED}]}`;
const MiB = 1024 * 1024;

/**
 * Requests and results at production size, and JSON numbers a double cannot hold, through the whole queue on the
 * `s3` store (a real SeaweedFS): API, Temporal with the claim check, a runner, the result endpoint and the webhook.
 */
describe('large payloads and exact numbers on the s3 store', () => {
  let weed: SeaweedFs;
  let stack: Stack;
  let backend: LoopbackServer;
  let cog: LoopbackServer;
  let receiver: LoopbackServer;
  let temporal: Client;
  let bigOutput: string;
  let fileBytes: Buffer;

  beforeAll(async () => {
    weed = await startSeaweedFs();
    // An HTTP model: answers with the size of the raw body it got, a large JSON, or exact numbers, as told.
    bigOutput = JSON.stringify({ image: `data:image/png;base64,${'QUJD'.repeat((3 * MiB) / 4)}`, seed: 7 });
    backend = await startLoopbackServer((req, _raw, res) => {
      const mode = /"mode":"(\w+)"/.exec(req.body.slice(0, 200))?.[1];
      const text =
        mode === 'big' ? bigOutput : mode === 'numbers' ? NUMBERS_OUTPUT : JSON.stringify({ bytes: req.body.length });
      res.writeHead(200, { 'content-type': 'application/json' }).end(text);
    });
    // A Cog server whose prediction has a 50 MiB file output (a data URI, as Cog sends it without --upload-url).
    fileBytes = Buffer.alloc(50 * MiB, 0x5a);
    const prediction = JSON.stringify({
      status: 'succeeded',
      output: `data:application/octet-stream;base64,${fileBytes.toString('base64')}`,
      logs: '',
    });
    cog = await startLoopbackServer((_req, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(prediction);
    });
    receiver = await startLoopbackServer((_req, _raw, res) => void res.writeHead(200).end());
    const env = await weed.bucket(`payloads-${randomUUID().slice(0, 8)}`, 'queue');
    stack = await startStack({
      models: {
        models: [
          { id: 'test/echo', backend: { kind: 'http', url: backend.url } },
          { id: 'test/file', backend: { kind: 'cog', url: cog.url }, timeoutSeconds: 300 },
        ],
      },
      env: { ...env, WEBHOOK_MAX_PAYLOAD_BYTES: String(8 * MiB) },
    });
    temporal = new Client({ connection: await Connection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! }) });
  }, 300_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await stack?.stop();
    await Promise.all([backend?.close(), cog?.close(), receiver?.close()]);
    await weed?.stop();
  });

  const submit = async (app: string, body: string, query = '') => {
    const res = await stack.api(`/${app}${query}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { request_id: string }).request_id;
  };
  const resultText = async (app: string, id: string, timeoutMs = 120_000) => {
    const res = await eventually(async () => {
      const r = await stack.api(`/${app}/requests/${id}`);
      if (r.status === 202 || r.status === 400) return undefined;
      return r;
    }, timeoutMs);
    return { status: res.status, text: await res.text() };
  };

  it('a 20 MiB data-URI input reaches the backend whole, and history keeps only a readable reference', async () => {
    const prefix = '{"mode":"size","image_url":"data:image/png;base64,';
    const body = `${prefix}${'QUJD'.repeat((20 * MiB - prefix.length - 100) / 4)}"}`;
    expect(body.length).toBeLessThanOrEqual(20 * MiB);
    const id = await submit('test/echo', body);
    const { status, text } = await resultText('test/echo', id);
    expect(status).toBe(200);
    expect(JSON.parse(text)).toEqual({ bytes: body.length });
    expect(backend.requests.at(-1)!.body).toBe(body);

    // What the Temporal UI shows for the request's input: a small JSON reference to the object in the bucket.
    const history = await temporal.workflow.getHandle(id).fetchHistory();
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
    const payload = started.input!.payloads![0]!;
    const shown = Buffer.from(payload.data!).toString('utf8');
    expect(shown.length).toBeLessThan(2000);
    expect(JSON.parse(shown)).toMatchObject({
      claim_check: expect.stringMatching(/^s3:\/\/payloads-.*\/queue\/payloads\/[0-9a-f]{64}$/),
    });
  });

  it('a 3 MiB JSON output comes back whole from the result endpoint and in the webhook', async () => {
    const id = await submit('test/echo', '{"mode":"big"}', `?fal_webhook=${encodeURIComponent(`${receiver.url}/big`)}`);
    const { status, text } = await resultText('test/echo', id);
    expect(status).toBe(200);
    expect(text).toBe(bigOutput);
    const hook = await eventually(async () => receiver.requests.find((r) => r.url === '/big'));
    expect(hook.body).toBe(
      `{"request_id":"${id}","gateway_request_id":"${id}","status":"OK","payload":${bigOutput},"error":null}`,
    );
  });

  it('integers past 2^53, -0 and long decimals reach the backend, result, stream, run and webhook exactly', async () => {
    const input = `{"mode":"numbers","seed":${SEED},"neg":${NEGATIVE},"z":-0,"d":0.1000000000000000000001}`;
    const id = await submit('test/echo', input, `?fal_webhook=${encodeURIComponent(`${receiver.url}/numbers`)}`);
    // The SSE stream runs to COMPLETED (its events carry the status; the client then reads the result).
    const stream = await stack.api(`/test/echo/requests/${id}/status/stream`);
    const events = await stream.text();
    expect(events).toMatch(/"status":"COMPLETED"/);
    const { status, text } = await resultText('test/echo', id);
    expect(status).toBe(200);
    expect(text).toBe(NUMBERS_OUTPUT);
    expect(backend.requests.find((r) => r.body.includes('"mode":"numbers"'))!.body).toBe(input);
    const hook = await eventually(async () => receiver.requests.find((r) => r.url === '/numbers'));
    expect(hook.body).toContain(`"payload":${NUMBERS_OUTPUT},`);
    // The signature covers exactly these bytes.
    const jwks = (await (await stack.api('/.well-known/jwks.json')).json()) as { keys: object[] };
    expect(verifyFal(hook, jwks)).toBe(true);

    // The synchronous run (`fal.run`) answers with the same bytes.
    const run = await stack.api('/run/test/echo', {
      method: 'POST',
      body: input,
      headers: { 'content-type': 'application/json' },
    });
    expect(run.status).toBe(200);
    expect(await run.text()).toBe(NUMBERS_OUTPUT);
  });

  it('a 50 MiB file output is stored in the bucket and served from its URL', async () => {
    const id = await submit('test/file', '{}');
    const { status, text } = await resultText('test/file', id, 240_000);
    expect(status).toBe(200);
    const output = JSON.parse(text) as { url: string; file_size: number };
    expect(output.file_size).toBe(fileBytes.length);
    expect(output.url.startsWith(`${weed.endpoint}/`)).toBe(true);
    const served = Buffer.from(await (await fetch(output.url)).arrayBuffer());
    expect(served.equals(fileBytes)).toBe(true);
  }, 300_000);

  it("@fal-ai/client's storage.upload PUTs straight to the store through a presigned URL", async () => {
    const initiate = await stack.api('/storage/upload/initiate?storage_type=fal-cdn-v3', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content_type: 'text/plain', file_name: 'note.txt' }),
    });
    const { upload_url } = (await initiate.json()) as { upload_url: string };
    expect(upload_url.startsWith(`${weed.endpoint}/`)).toBe(true);
    expect(upload_url).toContain('X-Amz-Signature=');

    const fal = falClientFor(stack);
    const bytes = Buffer.from(`hello from the fal client ${randomUUID()}`);
    const url = await fal.storage.upload(new Blob([bytes], { type: 'text/plain' }));
    expect(url.startsWith(`${weed.endpoint}/`)).toBe(true);
    const served = await fetch(url);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).toBe(true);
  });
});

describe('a payload the queue cannot carry', () => {
  let stack: Stack;
  beforeAll(async () => {
    // The claim check off: Temporal's own 2 MiB payload limit applies.
    stack = await startStack({
      // Unlimited: no admission queue, whose worker this API-only stack does not run.
      models: {
        models: [{ id: 'test/echo', concurrency: 'unlimited', backend: { kind: 'http', url: 'http://127.0.0.1:9' } }],
      },
      env: { CLAIM_CHECK_THRESHOLD_BYTES: '0' },
      workers: false,
    });
  });
  afterAll(async () => stack?.stop());

  it('is refused with 413 and the reason, never 503 "try again"', async () => {
    const res = await stack.api('/test/echo', {
      method: 'POST',
      body: JSON.stringify({ image_url: `data:image/png;base64,${'QUJD'.repeat(MiB)}` }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/claim check is off/);
  });
});
