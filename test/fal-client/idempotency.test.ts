import { randomUUID } from 'node:crypto';
import { useStack } from '../helpers/fixtures';
import { OTHER_KEY, TEST_KEY, eventually, waitCompleted } from '../helpers/stack';
import { falClientFor } from './fal-hosts';

const APP = 'acme/counted';
const OTHER_APP = 'acme/counted-too';

describe('Idempotency-Key: a repeated submit returns the same request instead of a second run', () => {
  // The gated backend holds every run until the test releases it, so repeats deliberately arrive while the first
  // run is still going (a slow run built on purpose, not one hoped for).
  const fx = useStack({
    models: ({ backend }) => ({
      models: [
        { id: APP, backend: { kind: 'http', url: backend.url }, concurrency: 4 },
        { id: OTHER_APP, backend: { kind: 'http', url: backend.url }, concurrency: 4 },
      ],
    }),
  });

  let released = 0;
  /** Answers the next `n` runs (oldest first) with what they got, waiting for each to arrive. */
  const releaseRuns = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const run = await fx.backend.nth(released + 1);
      fx.backend.release({ got: run.json });
      released++;
    }
  };
  const runsOf = (marker: string) =>
    fx.backend.requests.filter((r) => (r.json as { marker?: string }).marker === marker);
  const submit = async (key: string, marker: string, apiKey = TEST_KEY, app = APP) => {
    const res = await fx.stack.api(`/${app}`, {
      method: 'POST',
      key: apiKey,
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ marker }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { request_id: string }).request_id;
  };
  /** Waits until another owner's request has completed (the status route shows it only to them). */
  const theirsCompleted = (id: string) =>
    eventually(async () => {
      const res = await fx.stack.api(`/${APP}/requests/${id}/status`, { key: OTHER_KEY });
      return ((await res.json()) as { status?: string }).status === 'COMPLETED' ? true : undefined;
    });

  it('three submits through the official client, one after another and after completion, run the model once', async () => {
    const fal = falClientFor(fx.stack);
    const key = randomUUID();
    const marker = `sequential-${key}`;
    const options = { input: { marker }, headers: { 'Idempotency-Key': key } };
    const first = await fal.queue.submit(APP, options);
    const second = await fal.queue.submit(APP, options);
    await releaseRuns(1);
    await waitCompleted(fx.stack, APP, first.request_id);
    // Finished requests count too: the reuse policy refuses a second run of the same id.
    const third = await fal.queue.submit(APP, options);
    expect(new Set([first.request_id, second.request_id, third.request_id]).size).toBe(1);
    expect(await fal.queue.result(APP, { requestId: third.request_id })).toEqual({
      data: { got: { marker } },
      requestId: first.request_id,
    });
    // One id is one workflow, and it has completed: no later run can come from it, so the count is final.
    expect(runsOf(marker)).toHaveLength(1);
  });

  it('three concurrent submits with one key get one request id and one run', async () => {
    const key = randomUUID();
    const marker = `concurrent-${key}`;
    const ids = await Promise.all([submit(key, marker), submit(key, marker), submit(key, marker)]);
    expect(new Set(ids).size).toBe(1);
    await releaseRuns(1);
    await waitCompleted(fx.stack, APP, ids[0]!);
    expect(runsOf(marker)).toHaveLength(1);
  });

  it('the same key from another owner, or for another model, is another request', async () => {
    const key = randomUUID();
    const marker = `scoped-${key}`;
    const mine = await submit(key, marker);
    const theirs = await submit(key, marker, OTHER_KEY);
    const otherModel = await submit(key, marker, TEST_KEY, OTHER_APP);
    expect(new Set([mine, theirs, otherModel]).size).toBe(3);
    await releaseRuns(3);
    await waitCompleted(fx.stack, APP, mine);
    await waitCompleted(fx.stack, OTHER_APP, otherModel);
    await theirsCompleted(theirs);
    // Each owner sees only their own request under that id.
    const foreign = await fx.stack.api(`/${APP}/requests/${theirs}/status`);
    expect(foreign.status).toBe(404);
    expect(runsOf(marker)).toHaveLength(3);
  });

  it('submits without a key are never merged', async () => {
    const fal = falClientFor(fx.stack);
    const marker = `unkeyed-${randomUUID()}`;
    const [a, b] = await Promise.all([
      fal.queue.submit(APP, { input: { marker } }),
      fal.queue.submit(APP, { input: { marker } }),
    ]);
    expect(a.request_id).not.toBe(b.request_id);
    await releaseRuns(2);
    await waitCompleted(fx.stack, APP, a.request_id);
    await waitCompleted(fx.stack, APP, b.request_id);
    expect(runsOf(marker)).toHaveLength(2);
  });
});
