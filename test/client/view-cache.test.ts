import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestView } from '../../src/client/requests';
import { ViewCache, type ViewRead, type ViewSource } from '../../src/client/view-cache';
import { QueueStatus } from '../../src/workflows/shared/request';

/**
 * The status cache's rules, against a scripted source of truth: how many reads reach "Temporal" for how many polls,
 * and how stale an answer may be.
 */
const REFRESH_MS = 100;

function inQueue(requestId: string, queuePosition: number): RequestView {
  return { requestId, modelId: 'acme/m', status: QueueStatus.InQueue, queuePosition, logs: [] };
}
function completed(requestId: string): RequestView {
  return {
    requestId,
    modelId: 'acme/m',
    status: QueueStatus.Completed,
    outcome: { status: 'OK', output: { ok: true }, logs: [], metrics: { inference_time: 0.1 } },
  };
}

/** A request whose state the test moves; every read is counted, and `close` ends the long poll. */
class Source {
  reads = 0;
  view: RequestView;
  closed = false;
  readonly owner = 'alice';
  private closeWaiters: (() => void)[] = [];

  constructor(readonly requestId = 'r-1') {
    this.view = inQueue(requestId, 3);
  }

  readonly read: ViewRead = async (requestId, owner) => {
    this.reads++;
    await sleep(5);
    return { view: owner === this.owner && requestId === this.requestId ? this.view : undefined, closed: this.closed };
  };

  readonly waitForClose = (_requestId: string, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (this.closed) return resolve();
      this.closeWaiters.push(resolve);
      signal.addEventListener('abort', () => reject(new Error('aborted')));
    });

  finish(): void {
    this.view = completed(this.requestId);
    this.closed = true;
    for (const wake of this.closeWaiters.splice(0)) wake();
  }
}

/** A cache over `source`; `refreshMs` defaults to {@link REFRESH_MS}, long enough to see no background read when big. */
function cacheOver(source: ViewSource, { refreshMs = REFRESH_MS, idleMs = 10_000 } = {}) {
  return new ViewCache(source, { refreshMs, idleMs, finished: { maxEntries: 2, maxBytes: 1_000_000 } });
}

describe('status view cache', () => {
  let cache: ViewCache | undefined;
  afterEach(async () => cache?.close());

  it('answers many polls of a request in flight with one read per refresh interval', async () => {
    const source = new Source();
    cache = cacheOver(source);
    const first = await Promise.all(Array.from({ length: 20 }, () => cache!.get(source.requestId, source.owner)));
    expect(first.every((v) => v?.status === QueueStatus.InQueue)).toBe(true);
    expect(source.reads).toBe(1);

    const started = Date.now();
    while (Date.now() - started < 5 * REFRESH_MS) {
      await cache.get(source.requestId, source.owner);
      await sleep(5);
    }
    // About one background read per interval, not one per poll (roughly 100 polls happened).
    expect(source.reads).toBeGreaterThanOrEqual(3);
    expect(source.reads).toBeLessThanOrEqual(8);
  });

  it('reads in the background only for polls: one read, then none while nobody asks', async () => {
    const source = new Source();
    cache = cacheOver(source);
    await cache.get(source.requestId, source.owner);
    await sleep(4 * REFRESH_MS);
    expect(source.reads).toBe(1);
    // The next poll finds a view too old to answer with and reads afresh.
    source.view = inQueue(source.requestId, 1);
    expect(await cache.get(source.requestId, source.owner)).toMatchObject({ queuePosition: 1 });
    expect(source.reads).toBe(2);
  });

  it('re-reads cheaply from the previous view, telling whether the logs are wanted', async () => {
    const source = new Source();
    const rereads: boolean[] = [];
    cache = cacheOver({
      ...source,
      reread: async (requestId, owner, previous, logs) => {
        rereads.push(logs);
        expect(previous).toBe(source.view);
        return source.read(requestId, owner);
      },
    });
    await cache.get(source.requestId, source.owner);
    await sleep(1.5 * REFRESH_MS);
    await cache.get(source.requestId, source.owner);
    await sleep(1.5 * REFRESH_MS);
    expect(rereads[0]).toBe(false);
    await cache.get(source.requestId, source.owner, true);
    await sleep(1.5 * REFRESH_MS);
    expect(rereads.at(-1)).toBe(true);
    // The first read was a full one; every later one was cheap.
    expect(source.reads).toBe(1 + rereads.length);
  });

  it('shows a change to a client that keeps polling within a few refresh intervals', async () => {
    const source = new Source();
    cache = cacheOver(source);
    expect(await cache.get(source.requestId, source.owner)).toMatchObject({ queuePosition: 3 });
    source.view = inQueue(source.requestId, 0);
    const changedAt = Date.now();
    let seenAfter: number | undefined;
    while (seenAfter === undefined && Date.now() - changedAt < 20 * REFRESH_MS) {
      const view = await cache.get(source.requestId, source.owner);
      if (view?.status === QueueStatus.InQueue && view.queuePosition === 0) seenAfter = Date.now() - changedAt;
      else await sleep(REFRESH_MS / 4);
    }
    // A view is served at most 2 refresh intervals old, and a poll that finds it over one starts a read.
    expect(seenAfter).toBeDefined();
    expect(seenAfter!).toBeLessThanOrEqual(4 * REFRESH_MS);
  });

  it('sees the end at once through the long poll, then keeps the final view without reading again', async () => {
    const source = new Source();
    cache = cacheOver(source, { refreshMs: 60_000, idleMs: 120_000 });
    await cache.get(source.requestId, source.owner);
    source.finish();
    await sleep(50);
    expect((await cache.get(source.requestId, source.owner))?.status).toBe(QueueStatus.Completed);
    const reads = source.reads;
    for (let i = 0; i < 10; i++) await cache.get(source.requestId, source.owner);
    expect(source.reads).toBe(reads);
    expect(cache.hotCount).toBe(0);
  });

  it('never shows a request to another owner, cached or not', async () => {
    const source = new Source();
    cache = cacheOver(source);
    await cache.get(source.requestId, source.owner);
    expect(await cache.get(source.requestId, 'mallory')).toBeUndefined();
    source.finish();
    await sleep(50);
    expect(await cache.get(source.requestId, source.owner)).toMatchObject({ status: QueueStatus.Completed });
    expect(await cache.get(source.requestId, 'mallory')).toBeUndefined();
  });

  it('stops reading a request nobody polls any more', async () => {
    const source = new Source();
    cache = cacheOver(source, { idleMs: 3 * REFRESH_MS });
    await cache.get(source.requestId, source.owner);
    await sleep(6 * REFRESH_MS);
    expect(cache.hotCount).toBe(0);
    const reads = source.reads;
    await sleep(3 * REFRESH_MS);
    expect(source.reads).toBe(reads);
  });

  it('reads a cancelled request afresh', async () => {
    const source = new Source();
    cache = cacheOver(source, { refreshMs: 60_000, idleMs: 120_000 });
    await cache.get(source.requestId, source.owner);
    source.view = inQueue(source.requestId, 1);
    cache.invalidate(source.requestId);
    expect(await cache.get(source.requestId, source.owner)).toMatchObject({ queuePosition: 1 });
  });

  it('keeps only the most recently used finished requests', async () => {
    const sources = ['a', 'b', 'c'].map((id) => new Source(id));
    const reads = new Map(sources.map((s) => [s.requestId, s]));
    cache = cacheOver({
      read: (id, owner) => reads.get(id)!.read(id, owner),
      waitForClose: (id, signal) => reads.get(id)!.waitForClose(id, signal),
    });
    for (const s of sources) {
      s.finish();
      await cache.get(s.requestId, s.owner);
    }
    // a was evicted (maxEntries 2): reading it again goes to the source.
    const before = sources[0]!.reads;
    await cache.get('a', 'alice');
    expect(sources[0]!.reads).toBe(before + 1);
    const cReads = sources[2]!.reads;
    await cache.get('c', 'alice');
    expect(sources[2]!.reads).toBe(cReads);
  });
});
