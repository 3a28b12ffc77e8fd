import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { idempotentRequestId } from '../../src/client/requests';
import { useStack } from '../helpers/fixtures';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { scheduledActivities, startedAttempts } from '../helpers/history';
import { eventually, waitCompleted } from '../helpers/stack';

const GATED = 'acme/gated';
const FLAKY = 'acme/flaky';
const HOOK_PATH = '/hook';

/** Start timeouts, queue length limits and no-retry, each against a model limited to one run at a time. */
describe('queue limits per request', () => {
  let flaky: LoopbackServer;
  // Requests whose call number (per body `key`) is odd fail with 500; the retry after it succeeds.
  const calls = new Map<string, number>();

  beforeAll(async () => {
    flaky = await startLoopbackServer((rec, _raw, res) => {
      const key = (rec.json as { key: string }).key;
      const n = (calls.get(key) ?? 0) + 1;
      calls.set(key, n);
      const failing = n % 2 === 1;
      res
        .writeHead(failing ? 500 : 200, { 'content-type': 'application/json' })
        .end(JSON.stringify(failing ? { detail: 'boom' } : { key, call: n }));
    });
  });
  afterAll(async () => {
    await flaky?.close();
  });
  const fx = useStack({
    models: ({ backend }) => ({
      models: [
        { id: GATED, backend: { kind: 'http', url: backend.url }, queue: 'admission-workflow', concurrency: 1 },
        {
          id: FLAKY,
          backend: { kind: 'http', url: flaky.url },
          queue: 'admission-workflow',
          concurrency: 1,
          maxAttempts: 3,
        },
      ],
    }),
    receiver: respondJson(204, null),
  });

  const submit = (app: string, body: unknown, headers: Record<string, string> = {}, query = '') =>
    fx.stack.api(`/${app}${query}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });
  const accepted = async (res: Response) => {
    const body = (await res.json()) as { request_id: string; queue_position: number };
    if (res.status !== 200) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
    return body;
  };
  const statusIs = (app: string, id: string, wanted: string) =>
    eventually(async () => {
      const res = await fx.stack.api(`/${app}/requests/${id}/status`);
      const body = (await res.json()) as Record<string, unknown>;
      return body.status === wanted ? body : undefined;
    });
  const gatedBodies = () => fx.backend.requests.map((r) => (r.json as { n: string }).n);

  it('ends a request that has not started within x-fal-request-timeout with a user timeout, and never runs it', async () => {
    const hook = `?fal_webhook=${encodeURIComponent(`${fx.receiver.url}${HOOK_PATH}`)}`;
    // This one starts at once and runs longer than its own timeout: once started, it is not cut.
    const running = await accepted(await submit(GATED, { n: 'running' }, { 'x-fal-request-timeout': '1' }));
    await statusIs(GATED, running.request_id, 'IN_PROGRESS');
    const started = Date.now();
    const late = await accepted(await submit(GATED, { n: 'late' }, { 'x-fal-request-timeout': '1' }, hook));
    expect(late.queue_position).toBe(0);

    const done = await waitCompleted(fx.stack, GATED, late.request_id);
    // A lower bound only (the server's timer cannot fire early); a slow machine just makes it later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(done).toMatchObject({ status: 'COMPLETED', error_type: 'request_timeout' });
    const result = await fx.stack.api(`/${GATED}/requests/${late.request_id}`);
    expect(result.status).toBe(504);
    expect(result.headers.get('x-fal-request-timeout-type')).toBe('user');
    expect(await result.json()).toMatchObject({ error_type: 'request_timeout' });
    const webhook = await eventually(async () =>
      fx.receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === late.request_id),
    );
    expect(webhook.json).toMatchObject({ status: 'ERROR', error: 'Invalid status code: 504' });

    // The timed-out request gave its place back: the next one is first in line.
    const next = await accepted(await submit(GATED, { n: 'next' }));
    expect(next.queue_position).toBe(0);
    // The running one was submitted before the late one with the same 1 s timeout, so its timeout has passed too (the
    // late one's did, by the server's clock). No wait is needed: it is still running, and once released it ends
    // well, which it could not if it had been cut at any moment before.
    expect((await statusIs(GATED, running.request_id, 'IN_PROGRESS')).status).toBe('IN_PROGRESS');
    fx.backend.release({ n: 'running' });
    const ran = await waitCompleted(fx.stack, GATED, running.request_id);
    expect(ran.error_type).toBeUndefined();
    expect(await scheduledActivities(fx.temporal, late.request_id)).not.toContain('runInference');
    await fx.backend.nth(2);
    fx.backend.release();
    await waitCompleted(fx.stack, GATED, next.request_id);
    expect(gatedBodies()).toEqual(['running', 'next']);
  });

  it('answers 429 when the queue is as long as fal_max_queue_length, and creates nothing', async () => {
    const before = fx.backend.requests.length;
    const running = await accepted(await submit(GATED, { n: 'limit-running' }, {}, '?fal_max_queue_length=0'));
    await statusIs(GATED, running.request_id, 'IN_PROGRESS');
    const first = await accepted(await submit(GATED, { n: 'limit-1' }, {}, '?fal_max_queue_length=1'));
    expect(first.queue_position).toBe(0);

    // The refused submits carry an Idempotency-Key, which fixes the id their workflow would have had: describing it
    // reads the server's own record (not visibility, which lags), so "no such workflow" holds whenever it is asked.
    const keys = { refused: randomUUID(), zero: randomUUID(), bad: randomUUID() };
    const keyed = (key: string) => ({ 'idempotency-key': key });
    const refused = await submit(GATED, { n: 'refused' }, keyed(keys.refused), '?fal_max_queue_length=1');
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/queue of acme\/gated is full/i);
    const zero = await submit(GATED, { n: 'refused-too' }, keyed(keys.zero), '?fal_max_queue_length=0');
    expect(zero.status).toBe(429);
    const bad = await submit(GATED, { n: 'bad' }, keyed(keys.bad), '?fal_max_queue_length=-1');
    expect(bad.status).toBe(422);
    for (const key of Object.values(keys)) {
      const handle = fx.temporal.workflow.getHandle(idempotentRequestId('alice', GATED, key));
      await expect(handle.describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    }

    // Nor did they keep a place: the next accepted request is right behind the first.
    const second = await accepted(await submit(GATED, { n: 'limit-2' }, {}, '?fal_max_queue_length=2'));
    expect(second.queue_position).toBe(1);

    for (let i = 1; i <= 3; i++) {
      await fx.backend.nth(before + i);
      fx.backend.release();
    }
    await waitCompleted(fx.stack, GATED, second.request_id);
    expect(gatedBodies().slice(before)).toEqual(['limit-running', 'limit-1', 'limit-2']);
  });

  it('does not retry a failed run when x-fal-no-retry is set, and retries it otherwise', async () => {
    const once = await accepted(await submit(FLAKY, { key: 'no-retry' }, { 'x-fal-no-retry': 'true' }));
    const failed = await waitCompleted(fx.stack, FLAKY, once.request_id);
    expect(failed).toMatchObject({ error_type: 'runner_error' });
    expect(calls.get('no-retry')).toBe(1);

    const retried = await accepted(await submit(FLAKY, { key: 'retried' }));
    const ok = await waitCompleted(fx.stack, FLAKY, retried.request_id);
    expect(ok.error_type).toBeUndefined();
    expect(calls.get('retried')).toBe(2);
    const result = await fx.stack.api(`/${FLAKY}/requests/${retried.request_id}`);
    expect(await result.json()).toEqual({ key: 'retried', call: 2 });

    for (const value of ['1', 'yes']) {
      const key = `no-retry-${value}`;
      const res = await accepted(await submit(FLAKY, { key }, { 'x-fal-no-retry': value }));
      await waitCompleted(fx.stack, FLAKY, res.request_id);
      expect(calls.get(key)).toBe(1);
    }
    // The outcome is recorded only after the run's last attempt ended, so no retry can follow it: the counts above
    // are final, and the histories agree (the failed run started once, as attempt 1; the retried one ended on 2).
    expect(await startedAttempts(fx.temporal, once.request_id, 'runInference')).toEqual([1]);
    expect(await startedAttempts(fx.temporal, retried.request_id, 'runInference')).toEqual([2]);
    expect(calls.get('no-retry')).toBe(1);
  });
});
