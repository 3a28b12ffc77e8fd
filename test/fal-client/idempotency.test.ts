import { randomUUID } from 'node:crypto';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { OTHER_KEY, TEST_KEY, startStack, waitCompleted, type Stack } from '../helpers/stack';
import { falClientFor } from './fal-hosts';

const APP = 'acme/counted';
const OTHER_APP = 'acme/counted-too';

describe('Idempotency-Key: a repeated submit returns the same request instead of a second run', () => {
  let backend: LoopbackServer;
  let stack: Stack;

  beforeAll(async () => {
    // Answers after a moment, so repeats arrive while the first run is still going.
    backend = await startLoopbackServer(async (rec, _raw, res) => {
      await new Promise((r) => setTimeout(r, 300));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ got: rec.json }));
    });
    stack = await startStack({
      models: {
        models: [
          { id: APP, backend: { kind: 'http', url: backend.url }, concurrency: 4 },
          { id: OTHER_APP, backend: { kind: 'http', url: backend.url }, concurrency: 4 },
        ],
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await backend?.close();
  });

  const runsOf = (marker: string) => backend.requests.filter((r) => (r.json as { marker?: string }).marker === marker);
  const submit = async (key: string, marker: string, apiKey = TEST_KEY, app = APP) => {
    const res = await stack.api(`/${app}`, {
      method: 'POST',
      key: apiKey,
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ marker }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { request_id: string }).request_id;
  };
  const settle = () => new Promise((r) => setTimeout(r, 1500));

  it('three submits through the official client, one after another and after completion, run the model once', async () => {
    const fal = falClientFor(stack);
    const key = randomUUID();
    const marker = `sequential-${key}`;
    const options = { input: { marker }, headers: { 'Idempotency-Key': key } };
    const first = await fal.queue.submit(APP, options);
    const second = await fal.queue.submit(APP, options);
    await waitCompleted(stack, APP, first.request_id);
    // Finished requests count too: the reuse policy refuses a second run of the same id.
    const third = await fal.queue.submit(APP, options);
    expect(new Set([first.request_id, second.request_id, third.request_id]).size).toBe(1);
    expect(await fal.queue.result(APP, { requestId: third.request_id })).toEqual({
      data: { got: { marker } },
      requestId: first.request_id,
    });
    await settle();
    expect(runsOf(marker)).toHaveLength(1);
  });

  it('three concurrent submits with one key get one request id and one run', async () => {
    const key = randomUUID();
    const marker = `concurrent-${key}`;
    const ids = await Promise.all([submit(key, marker), submit(key, marker), submit(key, marker)]);
    expect(new Set(ids).size).toBe(1);
    await waitCompleted(stack, APP, ids[0]!);
    await settle();
    expect(runsOf(marker)).toHaveLength(1);
  });

  it('the same key from another owner, or for another model, is another request', async () => {
    const key = randomUUID();
    const marker = `scoped-${key}`;
    const mine = await submit(key, marker);
    const theirs = await submit(key, marker, OTHER_KEY);
    const otherModel = await submit(key, marker, TEST_KEY, OTHER_APP);
    expect(new Set([mine, theirs, otherModel]).size).toBe(3);
    await waitCompleted(stack, APP, mine);
    await waitCompleted(stack, OTHER_APP, otherModel);
    // Each owner sees only their own request under that id.
    const foreign = await stack.api(`/${APP}/requests/${theirs}/status`);
    expect(foreign.status).toBe(404);
    await settle();
    expect(runsOf(marker)).toHaveLength(3);
  });

  it('submits without a key are never merged', async () => {
    const fal = falClientFor(stack);
    const marker = `unkeyed-${randomUUID()}`;
    const [a, b] = await Promise.all([
      fal.queue.submit(APP, { input: { marker } }),
      fal.queue.submit(APP, { input: { marker } }),
    ]);
    expect(a.request_id).not.toBe(b.request_id);
    await waitCompleted(stack, APP, a.request_id);
    await waitCompleted(stack, APP, b.request_id);
    expect(runsOf(marker)).toHaveLength(2);
  });
});
