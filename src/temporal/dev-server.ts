import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';

/** Search attribute types accepted by `temporal server start-dev --search-attribute Name=Type`. */
export const SearchAttributeType = {
  Keyword: 'Keyword',
  Text: 'Text',
  Int: 'Int',
  Double: 'Double',
  Bool: 'Bool',
  Datetime: 'Datetime',
  KeywordList: 'KeywordList',
} as const;
export type SearchAttributeType = (typeof SearchAttributeType)[keyof typeof SearchAttributeType];

/** Options for {@link startDevServer}. */
export interface DevServerOptions {
  /** Path of the `temporal` CLI binary, usually from `ensureTemporalCli`. */
  cliPath: string;
  /** SQLite file that keeps workflow state across restarts; its directory is created if missing. Omitted = in-memory. */
  dbFile?: string;
  /**
   * Address the frontend (and UI) bind to.
   * @default '127.0.0.1'
   */
  ip?: string;
  /**
   * Frontend gRPC port; 0 picks a free one.
   * @default 7233
   */
  port?: number;
  /**
   * Web UI port; 0 picks a free one; `false` runs headless.
   * @default `port + 1000` (8233 with the default port), or a free port when `port` is 0
   */
  uiPort?: number | false;
  /**
   * Namespace to create (besides `default`, which always exists) and to check for readiness.
   * @default 'default'
   */
  namespace?: string;
  /** Custom search attributes to register at startup, e.g. `{ FalModel: 'Keyword' }`. */
  searchAttributes?: Record<string, SearchAttributeType>;
  /** Dynamic config overrides, e.g. `{ 'frontend.enableUpdateWorkflowExecution': true }`. */
  dynamicConfig?: Record<string, string | number | boolean>;
  /** Receives the server's output lines, prefixed with `[temporal] `. Omitted = output is only kept for errors. */
  log?: (line: string) => void;
  /**
   * How long to wait for the frontend to answer before giving up.
   * @default 60_000
   */
  readyTimeoutMs?: number;
}

/** A running dev server started by {@link startDevServer}. */
export interface DevServer {
  /** `host:port` of the frontend, as `TEMPORAL_ADDRESS` expects. */
  address: string;
  /** Web UI URL, unless headless. */
  uiUrl?: string;
  /** Namespace that was checked for readiness. */
  namespace: string;
  /** Process id of the `temporal` CLI. */
  pid: number;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. Safe to call more than once. */
  stop(): Promise<void>;
}

/** Thrown when the dev server exits or stays silent before it is ready; the message carries its last output. */
export class DevServerStartError extends Error {
  override name = 'DevServerStartError';
}

const DEFAULT_PORT = 7233;
const STOP_GRACE_MS = 10_000;
const OUTPUT_TAIL_LINES = 30;
// Ports we chose ourselves can be taken by someone else before the CLI binds them; a retry picks new ones.
const PORT_RACE_ATTEMPTS = 3;

/**
 * Starts `temporal server start-dev` and resolves once its frontend answers `DescribeNamespace` and lists every
 * requested search attribute.
 *
 * The child process does not keep the parent's event loop alive, and is SIGKILLed when the parent exits, so a
 * forgotten {@link DevServer.stop} cannot leak a server. The CLI picks free ports for its HTTP API, metrics and
 * internal services by itself; only the frontend and UI ports are chosen here.
 *
 * @throws {@link DevServerStartError} when the process exits or is not ready within `readyTimeoutMs`.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const choosesPorts = options.port === 0 || options.uiPort === 0;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options);
    } catch (err) {
      const portTaken = err instanceof DevServerStartError && /address already in use/i.test(err.message);
      if (!choosesPorts || !portTaken || attempt >= PORT_RACE_ATTEMPTS) throw err;
      options.log?.(`[temporal] a chosen port was taken before the server bound it; retrying with new ports`);
    }
  }
}

async function launch(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const namespace = options.namespace ?? 'default';
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const log = options.log;

  const wantsPorts = [options.port === 0, options.uiPort === 0 || (options.port === 0 && options.uiPort === undefined)];
  const free = await findFreePorts(ip, wantsPorts.filter(Boolean).length);
  const port = options.port === 0 ? free.shift()! : (options.port ?? DEFAULT_PORT);
  const uiPort = options.uiPort === false ? false : wantsPorts[1] ? free.shift()! : (options.uiPort ?? port + 1000);

  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port)];
  args.push(...(uiPort === false ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (options.dbFile) {
    const dbFile = resolve(options.dbFile);
    await mkdir(dirname(dbFile), { recursive: true });
    args.push('--db-filename', dbFile);
  }
  // `default` is always created; naming it again is harmless but only adds noise to the command line.
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  for (const [key, value] of Object.entries(options.dynamicConfig ?? {})) {
    // The CLI parses each value as JSON, so strings need their quotes.
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  args.push('--log-level', 'warn');

  const child = spawn(options.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Tests and scripts should be able to finish without calling stop(); the 'exit' hook below cleans up then.
  child.unref();
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    (stream as Socket).unref();
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      tail.push(line);
      if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
      log?.(`[temporal] ${line}`);
    });
  }

  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  // 'close' rather than 'exit': it fires after the output pipes drain, so error messages include the last lines.
  const closed = new Promise<string>((resolveClosed) => {
    child.on('close', (code, signal) => {
      process.off('exit', killOnExit);
      resolveClosed(signal ? `signal ${signal}` : `code ${code}`);
    });
    child.on('error', (err) => {
      process.off('exit', killOnExit);
      resolveClosed(`error: ${err.message}`);
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const grace = new AbortController();
      const outcome = await Promise.race([closed, sleep(STOP_GRACE_MS, 'timeout', { signal: grace.signal })]);
      grace.abort();
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await closed;
      }
    })().catch(() => {});
    return stopping;
  };

  const address = formatAddress(connectHost(ip), port);
  const exitedEarly = closed.then((how) => {
    throw new DevServerStartError(
      `temporal server start-dev (${options.cliPath}) ended (${how}) before it was ready:\n${tail.join('\n')}`,
    );
  });
  // Only the race below cares; an exit after readiness is reported through `log`, not as a rejection.
  exitedEarly.catch(() => {});
  const polling = new AbortController();
  const started = Date.now();
  try {
    await Promise.race([
      waitForTemporal(address, namespace, readyTimeoutMs, {
        searchAttributes: Object.keys(options.searchAttributes ?? {}),
        signal: polling.signal,
      }),
      exitedEarly,
    ]);
  } catch (err) {
    polling.abort();
    await stop();
    if (err instanceof DevServerStartError) throw err;
    throw new DevServerStartError(
      `temporal server start-dev at ${address} was not ready: ${errorMessage(err)}\nLast output:\n${tail.join('\n')}`,
    );
  }
  log?.(`[temporal] ready at ${address} in ${Date.now() - started} ms`);

  if (log) {
    void closed.then((how) => log(`[temporal] exited (${how})`));
  }
  return {
    address,
    uiUrl: uiPort === false ? undefined : `http://${formatAddress(connectHost(ip), uiPort)}`,
    namespace,
    pid: child.pid!,
    stop,
  };
}

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
 */
export async function waitForTemporal(
  address: string,
  namespace: string,
  timeoutMs: number,
  options: WaitForTemporalOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const missing = new Set(options.searchAttributes ?? []);
  let lastError = 'no attempt made';
  let connection: Connection | undefined;
  try {
    while (Date.now() < deadline) {
      options.signal?.throwIfAborted();
      const current = (connection ??= Connection.lazy({ address }));
      const callDeadline = Math.min(deadline, Date.now() + 3_000);
      const call = <T>(fn: () => Promise<T>): Promise<T> =>
        current.withDeadline(callDeadline, () => (options.signal ? current.withAbortSignal(options.signal, fn) : fn()));
      try {
        await call(() => current.workflowService.describeNamespace({ namespace }));
        if (missing.size === 0) return;
        const { customAttributes } = await call(() => current.operatorService.listSearchAttributes({ namespace }));
        for (const name of Object.keys(customAttributes ?? {})) missing.delete(name);
        if (missing.size === 0) return;
        lastError = `search attributes not registered yet: ${[...missing].join(', ')}`;
      } catch (err) {
        lastError = errorMessage(err);
        // A refused connection leaves no socket behind, and a fresh channel skips grpc-js's reconnect backoff,
        // which would otherwise delay readiness by seconds. Other failures keep the channel: grpc-js does not
        // release a socket whose handshake is still pending, so new channels would pile them up.
        if (isGrpcUnavailable(err)) {
          connection = undefined;
          await current.close();
        }
      }
      await sleep(Math.max(0, Math.min(250, deadline - Date.now())), undefined, { signal: options.signal });
    }
  } finally {
    await connection?.close();
  }
  throw new Error(`Temporal at ${address} (namespace ${namespace}) not ready after ${timeoutMs} ms: ${lastError}`);
}

/** Returns a TCP port that is free on `host` right now (bind to port 0, read it, close). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await findFreePorts(host, 1);
  return port!;
}

/** Holds all listeners open until every port is read, so one call never returns the same port twice. */
async function findFreePorts(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolveServer, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, host, () => resolveServer(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}

/** A wildcard bind address is not something a client can dial; use loopback instead. */
function connectHost(ip: string): string {
  if (ip === '0.0.0.0' || ip === '') return '127.0.0.1';
  if (ip === '::') return '::1';
  return ip;
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** gRPC status 14: nothing answered at the address (yet). */
function isGrpcUnavailable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 14;
}

// Duck-typed rather than `instanceof Error`: under jest, errors can come from another realm.
function errorMessage(err: unknown): string {
  return typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);
}
