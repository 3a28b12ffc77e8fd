import type { Logger } from 'pino';
import type { RequestsClient, RequestView } from '../client/requests';
import { QueueStatus } from '../workflows/shared/request';

/** What a watcher hears: the request's state at each poll, that it is gone, or that the API is shutting down. */
export type WatchEvent = { type: 'view'; view: RequestView } | { type: 'gone' } | { type: 'shutdown' };

export type WatchListener = (event: WatchEvent) => void;

export interface StatusWatchersOptions {
  /** Pause between two reads of a watched request's state. */
  pollMs: number;
  logger: Logger;
}

interface Watch {
  requestId: string;
  owner: string;
  listeners: Set<WatchListener>;
  /** Some listener shows the logs. */
  logs: boolean;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/**
 * Change feeds of requests' state for the status stream and synchronous runs. A request's state lives
 * in Temporal (`describe` plus heartbeat details, which no history event announces), so it is read
 * with {@link RequestsClient.get} every `pollMs` — once per request however many clients watch it,
 * and not at all once the last of them has gone.
 */
export class StatusWatchers {
  private readonly watches = new Map<string, Watch>();
  private closed = false;

  constructor(
    private readonly requests: RequestsClient,
    private readonly options: StatusWatchersOptions,
  ) {}

  /**
   * Calls `listener` with the request's state after every poll until it is COMPLETED or gone (the
   * listener hears that last state too); `logs`: the listener shows the logs, so they must be kept current.
   * Returns the function that stops listening.
   */
  watch(requestId: string, owner: string, options: { logs?: boolean }, listener: WatchListener): () => void {
    if (this.closed) {
      listener({ type: 'shutdown' });
      return () => undefined;
    }
    const key = `${owner}\n${requestId}`;
    let watch = this.watches.get(key);
    if (!watch) {
      watch = { requestId, owner, listeners: new Set(), logs: false, stopped: false };
      this.watches.set(key, watch);
      this.schedule(key, watch);
    }
    watch.logs ||= options.logs === true;
    watch.listeners.add(listener);
    const current = watch;
    return () => {
      current.listeners.delete(listener);
      if (current.listeners.size === 0) this.stop(key, current);
    };
  }

  /** Requests being polled right now. */
  get watchedCount(): number {
    return this.watches.size;
  }

  /** Stops every poll and tells every listener, so open streams end and the server can close. */
  close(): void {
    this.closed = true;
    for (const [key, watch] of [...this.watches]) {
      const listeners = [...watch.listeners];
      this.stop(key, watch);
      for (const listener of listeners) notify(listener, { type: 'shutdown' });
    }
  }

  private schedule(key: string, watch: Watch): void {
    watch.timer = setTimeout(() => void this.poll(key, watch), this.options.pollMs);
  }

  private async poll(key: string, watch: Watch): Promise<void> {
    let event: WatchEvent | undefined;
    try {
      const view = await this.requests.get(watch.requestId, watch.owner, { logs: watch.logs });
      event = view ? { type: 'view', view } : { type: 'gone' };
    } catch (err) {
      // Temporal briefly unreachable: keep the watchers and try again at the next tick.
      this.options.logger.warn({ err, requestId: watch.requestId }, 'status poll failed');
    }
    if (watch.stopped) return;
    const last = event?.type === 'gone' || (event?.type === 'view' && event.view.status === QueueStatus.Completed);
    const listeners = [...watch.listeners];
    if (last) this.stop(key, watch);
    else this.schedule(key, watch);
    if (event) for (const listener of listeners) notify(listener, event);
  }

  private stop(key: string, watch: Watch): void {
    watch.stopped = true;
    clearTimeout(watch.timer);
    watch.listeners.clear();
    if (this.watches.get(key) === watch) this.watches.delete(key);
  }
}

function notify(listener: WatchListener, event: WatchEvent): void {
  try {
    listener(event);
  } catch {
    // One broken stream must not starve the others watching the same request.
  }
}
