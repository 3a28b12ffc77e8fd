import { setTimeout as sleep } from 'node:timers/promises';
import type { RequestView } from './request-view';
import { QueueStatus } from '../workflows/shared/request';

/** A read of a request's state straight from Temporal; `closed` = its workflow has ended (the view is final). */
export type ViewRead = (
  requestId: string,
  owner: string,
) => Promise<{ view: RequestView | undefined; closed: boolean }>;

/**
 * A cheaper read of a request already known to be in flight, from its `previous` view: it may skip what cannot have
 * changed unseen (a running request ends through the long poll; its logs matter only when `logs` are wanted).
 */
export type ViewReread = (
  requestId: string,
  owner: string,
  previous: RequestView,
  logs: boolean,
) => Promise<{ view: RequestView | undefined; closed: boolean }>;

/** Resolves (or rejects) once the request's workflow has closed; a long poll, aborted through `signal`. */
export type WaitForClose = (requestId: string, signal: AbortSignal) => Promise<unknown>;

/** Where the views come from. */
export interface ViewSource {
  read: ViewRead;
  /** Default: {@link read}. A full {@link read} is still made every {@link FULL_READ_EVERY_MS}. */
  reread?: ViewReread;
  waitForClose: WaitForClose;
}

/** Time as the cache reads it and waits on it; tests pass a clock they move by hand. */
export interface Clock {
  now(): number;
  /** Calls `fn` once, `ms` from now, without keeping the process alive; the returned function cancels the call. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The process's own clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** How long {@link ViewCache.close} waits for the calls it aborted to settle. */
const CLOSE_WAIT_MS = 5_000;
/** Even a request read cheaply is read in full this often, in case a cheap read or the long poll missed something. */
const FULL_READ_EVERY_MS = 10_000;

export interface ViewCacheOptions {
  /** How often a request that clients are polling is read again in the background. */
  refreshMs: number;
  /** A request nobody asked about for this long is no longer read in the background. */
  idleMs: number;
  /** Finished requests kept, and the bytes (of JSON) their views may take together. */
  finished: { maxEntries: number; maxBytes: number };
  onError?: (err: unknown, requestId: string) => void;
  /** Called for every answer: from memory, or after a read from Temporal made (or joined) for it. */
  onAnswer?: (source: 'cache' | 'temporal') => void;
  /** @default {@link systemClock} */
  clock?: Clock;
}

interface Hot {
  requestId: string;
  owner: string;
  view?: RequestView;
  readAt: number;
  fullReadAt: number;
  askedAt: number;
  /** Last time a poll wanted the logs. */
  logsAskedAt: number;
  reading?: Promise<RequestView | undefined>;
  cancelTimer?: () => void;
  closeWatch?: AbortController;
  dropped: boolean;
}

/**
 * Status reads without a Temporal round trip per poll. A finished request never changes, so its view is kept (LRU).
 * A request in flight that clients poll is read in the background at most once per `refreshMs` (and only if it was
 * polled since the last read), however many polls arrive, and a long poll on its workflow's close re-reads it the
 * moment it ends. Polls are answered from the latest read unless it is over `2 × refreshMs` old (a poll that finds
 * it over `refreshMs` old starts the next read at once). A view is that much behind Temporal at most while the
 * request runs, and never once it has ended.
 */
export class ViewCache {
  private readonly hot = new Map<string, Hot>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly finished = new Map<string, { owner: string; view: RequestView; bytes: number }>();
  private finishedBytes = 0;
  private closed = false;
  private readonly clock: Clock;

  constructor(
    private readonly source: ViewSource,
    private readonly options: ViewCacheOptions,
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** The request's view; `logs`: the caller shows its logs (they are kept current only while someone does). */
  async get(requestId: string, owner: string, logs = false): Promise<RequestView | undefined> {
    const cached = this.cached(requestId, owner, logs);
    this.options.onAnswer?.(cached ? 'cache' : 'temporal');
    return cached ? cached.view : this.fetch(requestId, owner, logs);
  }

  /** What memory can answer with at once: a finished request's view, or a fresh enough one of a request in flight. */
  private cached(requestId: string, owner: string, logs: boolean): { view: RequestView | undefined } | undefined {
    const done = this.finished.get(requestId);
    if (done) {
      // Most recently used last, so eviction takes the oldest.
      this.finished.delete(requestId);
      this.finished.set(requestId, done);
      return { view: done.owner === owner ? done.view : undefined };
    }
    const hot = this.hot.get(requestId);
    if (!hot || hot.owner !== owner || !hot.view) return undefined;
    hot.askedAt = this.clock.now();
    if (logs) hot.logsAskedAt = hot.askedAt;
    const age = hot.askedAt - hot.readAt;
    // A view over `refreshMs` old is still good for this answer, but the next one gets a fresher read.
    if (age > this.options.refreshMs) this.backgroundRefresh(hot);
    // One that is far behind (Temporal slow, or a read skipped because nobody polled) is not served: the poll waits.
    return age <= 2 * this.options.refreshMs ? { view: hot.view } : undefined;
  }

  private async fetch(requestId: string, owner: string, logs: boolean): Promise<RequestView | undefined> {
    const hot = this.hot.get(requestId);
    // Another owner's poll of a request in flight: answered, never cached (it finds nothing).
    if (hot && hot.owner !== owner) return (await this.source.read(requestId, owner)).view;
    if (hot) {
      if (logs) hot.logsAskedAt = this.clock.now();
      return this.refresh(hot);
    }
    if (this.closed) return (await this.source.read(requestId, owner)).view;
    const now = this.clock.now();
    const entry: Hot = {
      requestId,
      owner,
      readAt: 0,
      fullReadAt: 0,
      askedAt: now,
      logsAskedAt: logs ? now : 0,
      dropped: false,
    };
    this.hot.set(requestId, entry);
    return this.refresh(entry);
  }

  /** Forgets what is known of a request in flight (it was just cancelled): the next poll reads it afresh. */
  invalidate(requestId: string): void {
    const hot = this.hot.get(requestId);
    if (hot) this.drop(hot);
  }

  /** Requests read in the background right now. */
  get hotCount(): number {
    return this.hot.size;
  }

  /**
   * Stops every background read and long poll (the API is shutting down); resolves once none is left in flight, so
   * the Temporal connection can be closed under no call (a call retried on a closed connection throws in a timer),
   * or after {@link CLOSE_WAIT_MS} at most.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const hot of [...this.hot.values()]) this.drop(hot);
    // Bounded: the SDK does not cancel a call made under a signal that was aborted already (src/temporal/abort.ts),
    // so a long poll begun just after its abort can outlive it; a stop must end all the same.
    await Promise.race([Promise.allSettled([...this.inFlight]), sleep(CLOSE_WAIT_MS, undefined, { ref: false })]);
  }

  /** Keeps track of a call to the source until it settles. */
  private track<T>(call: Promise<T>): Promise<T> {
    this.inFlight.add(call);
    const forget = () => void this.inFlight.delete(call);
    call.then(forget, forget);
    return call;
  }

  private refresh(hot: Hot): Promise<RequestView | undefined> {
    hot.reading ??= this.track(this.readFor(hot)).then(
      ({ view, closed }) => {
        hot.reading = undefined;
        hot.view = view;
        hot.readAt = this.clock.now();
        if (!view || (closed && view.status === QueueStatus.Completed)) {
          this.drop(hot);
          if (view) this.keepFinished(hot.requestId, hot.owner, view);
        } else {
          this.schedule(hot);
        }
        return view;
      },
      (err: unknown) => {
        hot.reading = undefined;
        this.drop(hot);
        throw err;
      },
    );
    return hot.reading;
  }

  private readFor(hot: Hot): ReturnType<ViewRead> {
    const now = this.clock.now();
    const { reread } = this.source;
    if (hot.view && reread && now - hot.fullReadAt < FULL_READ_EVERY_MS) {
      return reread(hot.requestId, hot.owner, hot.view, now - hot.logsAskedAt <= 4 * this.options.refreshMs);
    }
    hot.fullReadAt = now;
    return this.source.read(hot.requestId, hot.owner);
  }

  private schedule(hot: Hot): void {
    if (hot.dropped) return;
    hot.cancelTimer?.();
    if (this.clock.now() - hot.askedAt > this.options.idleMs) {
      this.drop(hot);
      return;
    }
    // Read again only for a request polled since the last read: the reads never outnumber the polls.
    hot.cancelTimer = this.clock.setTimer(
      () => (hot.askedAt > hot.readAt ? this.backgroundRefresh(hot) : this.schedule(hot)),
      this.options.refreshMs,
    );
    if (!hot.closeWatch) {
      const closeWatch = new AbortController();
      hot.closeWatch = closeWatch;
      // Whatever the long poll ends with (closed, failed, or Temporal unreachable), a fresh read tells the state.
      void this.track(this.source.waitForClose(hot.requestId, closeWatch.signal))
        .catch(() => undefined)
        .then(() => {
          if (closeWatch.signal.aborted || hot.dropped) return;
          hot.closeWatch = undefined;
          this.backgroundRefresh(hot);
        });
    }
  }

  private backgroundRefresh(hot: Hot): void {
    if (hot.dropped) return;
    this.refresh(hot).catch((err: unknown) => this.options.onError?.(err, hot.requestId));
  }

  private drop(hot: Hot): void {
    hot.dropped = true;
    hot.cancelTimer?.();
    hot.closeWatch?.abort();
    if (this.hot.get(hot.requestId) === hot) this.hot.delete(hot.requestId);
  }

  private keepFinished(requestId: string, owner: string, view: RequestView): void {
    const { maxEntries, maxBytes } = this.options.finished;
    const bytes = JSON.stringify(view).length;
    if (bytes > maxBytes / 10) return;
    const previous = this.finished.get(requestId);
    if (previous) this.finishedBytes -= previous.bytes;
    this.finished.set(requestId, { owner, view, bytes });
    this.finishedBytes += bytes;
    for (const [id, old] of this.finished) {
      if (this.finished.size <= maxEntries && this.finishedBytes <= maxBytes) break;
      this.finished.delete(id);
      this.finishedBytes -= old.bytes;
    }
  }
}
