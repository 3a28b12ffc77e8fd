import type { Connection } from '@temporalio/client';

/** The part of a Temporal `Client` or `Connection` that scopes its calls' cancellation. */
type AbortScope = Pick<Connection, 'withAbortSignal'>;

/**
 * Runs `fn`'s Temporal calls under a signal of their own that `signal` aborts.
 *
 * The SDK (1.24) adds an `abort` listener, which holds the gRPC call, to the signal of every call it makes and never
 * removes it. Given a signal that lives as long as the process, every call ever made stays in memory: the API grew
 * by about 6 KB per request while a 100,000 line built (docs/performance.md). A child signal per operation takes
 * those listeners with it when the operation is done; only our one listener sits on `signal`, and it is removed.
 */
export async function withLinkedAbortSignal<T>(
  scope: AbortScope,
  signal: AbortSignal,
  fn: () => Promise<T>,
): Promise<T> {
  // The SDK listens for a later abort only: a call under a signal aborted already would go ahead.
  signal.throwIfAborted();
  const child = new AbortController();
  const abort = () => child.abort(signal.reason);
  signal.addEventListener('abort', abort, { once: true });
  try {
    return await scope.withAbortSignal(child.signal, fn);
  } finally {
    signal.removeEventListener('abort', abort);
  }
}
