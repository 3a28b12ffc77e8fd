/** Waiting for a Temporal frontend (ours or an existing cluster) to be ready for this project. */
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { acceptsTcp, errorMessage, parseAddress } from './net';

/** Options for {@link waitForTemporal}. */
export interface WaitForTemporalOptions {
  /** Custom search attributes that must be registered in the namespace before it counts as ready. */
  searchAttributes?: readonly string[];
  /** Stops waiting early (the promise rejects). */
  signal?: AbortSignal;
}

/**
 * Resolves once the Temporal frontend at `address` answers `DescribeNamespace` for `namespace` (and lists the
 * given search attributes); rejects with the last error after `timeoutMs`.
 *
 * Probes the TCP port before each gRPC attempt because the SDK's calls wait for a connection until their
 * deadline, and grpc-js backs off between reconnects: probing gRPC alone notices a fresh server seconds late.
 */
export async function waitForTemporal(
  address: string,
  namespace: string,
  timeoutMs: number,
  options: WaitForTemporalOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const [host, port] = parseAddress(address);
  const missing = new Set(options.searchAttributes ?? []);
  let lastError = 'no attempt made';
  let connection: Connection | undefined;
  try {
    while (Date.now() < deadline) {
      options.signal?.throwIfAborted();
      if (!(await acceptsTcp(host, port, Math.min(1_000, deadline - Date.now())))) {
        lastError = `nothing accepts connections at ${address}`;
        // A channel that saw the port closed would wait out its backoff; the next open port gets a fresh one.
        await connection?.close();
        connection = undefined;
      } else {
        const current = (connection ??= Connection.lazy({ address }));
        const callDeadline = Math.min(deadline, Date.now() + 3_000);
        const call = <T>(fn: () => Promise<T>): Promise<T> =>
          current.withDeadline(callDeadline, () =>
            options.signal ? current.withAbortSignal(options.signal, fn) : fn(),
          );
        try {
          await call(() => current.workflowService.describeNamespace({ namespace }));
          if (missing.size === 0) return;
          const { customAttributes } = await call(() => current.operatorService.listSearchAttributes({ namespace }));
          for (const name of Object.keys(customAttributes ?? {})) missing.delete(name);
          if (missing.size === 0) return;
          lastError = `search attributes not registered yet: ${[...missing].join(', ')}`;
        } catch (err) {
          // The channel is kept: grpc-js does not release a socket whose handshake is still pending, so a new
          // channel per attempt against a listener that never speaks HTTP/2 would pile sockets up.
          lastError = errorMessage(err);
        }
      }
      await sleep(Math.max(0, Math.min(100, deadline - Date.now())), undefined, { signal: options.signal });
    }
  } finally {
    await connection?.close();
  }
  throw new Error(`Temporal at ${address} (namespace ${namespace}) not ready after ${timeoutMs} ms: ${lastError}`);
}
