import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_TEMPORAL_PORT, connectHost, errorMessage, findFreePorts, formatAddress } from './net';
import { waitForTemporal } from './readiness';

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
   * SQLite pragmas for `dbFile` (`--sqlite-pragma`). The default, a write-ahead log synced at checkpoints, keeps every
   * committed transaction through a crash of the server process (kill -9 included) and costs a fraction of SQLite's
   * own default (a rollback journal fsynced on every commit); only an OS crash or power cut can lose the last commits.
   * Pass `{}` for SQLite's defaults.
   * @default { journal_mode: 'wal', synchronous: 'normal' }
   */
  sqlitePragmas?: Record<string, string>;
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
   * Port of the server's own Prometheus metrics (`--metrics-port`, served at `/metrics`); 0 picks a free one. The
   * bench reads what each request costs the server from them. Omitted = no metrics listener.
   */
  metricsPort?: number;
  /**
   * Namespace to create (besides `default`, which always exists) and to check for readiness.
   * @default 'default'
   */
  namespace?: string;
  /**
   * Codec server the Web UI decodes payloads with (`--ui-codec-endpoint`), e.g. the API's `http://127.0.0.1:8080/codec`;
   * the UI reports it in `/api/v1/settings`.
   */
  uiCodecEndpoint?: string;
  /** Custom search attributes to register at startup, e.g. `{ FalModel: 'Keyword' }`. */
  searchAttributes?: Record<string, SearchAttributeType>;
  /**
   * Dynamic config values, e.g. `{ 'frontend.enableUpdateWorkflowExecution': true }`, on top of
   * {@link TUNED_DYNAMIC_CONFIG} (a key given here replaces the tuned value).
   */
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
  /** The server's Prometheus metrics (`http://host:port/metrics`), when {@link DevServerOptions.metricsPort} was given. */
  metricsUrl?: string;
  /** Namespace that was checked for readiness. */
  namespace: string;
  /** Process id of the `temporal` CLI. */
  pid: number;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. Safe to call more than once. */
  stop(): Promise<void>;
}

/** Thrown when the dev server exits or does not answer before it is ready; the message summarises its output. */
export class DevServerStartError extends Error {
  override name = 'DevServerStartError';
  constructor(
    message: string,
    /** Everything the server printed before failing (capped at {@link MAX_STARTUP_LINES} lines). */
    readonly output: readonly string[],
  ) {
    super(`${message}\n${summarise(output)}`);
  }
}

/**
 * Dynamic config of every Temporal server we launch: the dev server of `npm start`, the tests' global setup, the bench
 * (for the raw-Temporal baseline and for us alike) and the chaos run, and the cluster's (scripts/cluster/dynamicconfig.yaml).
 *
 * - `history.transferProcessorMaxPollRPS` (default 20 per shard): the history service loads transfer tasks at this
 *   rate, and the dev server has one shard, so every workflow task waited 40-48 ms between scheduled and started; a
 *   one-activity workflow took about 100 ms end to end instead of about 15 ms.
 * - `matching.forwarderMaxRatePerSecond` (default 10): task queue partitions forward polls and tasks to their parent
 *   at this rate, which put a ~100 ms tail on the first tasks of a queue.
 * - `history.visibilityProcessorMaxPollRPS` (default 20 per shard): the same limit for visibility records, which queue
 *   positions and `fal_max_queue_length` are counted from (docs/queue.md); the default let them lag behind.
 * - `matching.enableFairness`: owners share a model's task queue by weight (`fairnessKey` / `fairnessWeight` on each
 *   run) instead of one burst starving the others.
 *
 * - `matching.numTaskqueueRead/WritePartitions` (default 4): order is kept per partition, and one partition keeps each
 *   owner's line in submit order; with 4, runs on the cluster topology overtook thousands of earlier requests.
 * - `system.forceSearchAttributesCacheRefreshOnRead` (the server's default is false; the CLI's dev server turns it on,
 *   so that search attributes created while it runs work at once): with it on, every read of the search attributes
 *   goes to the database, about 13 cluster-metadata and 4 namespace reads per request of ours on the dev server's one
 *   SQLite connection. Off, it saved 4.5 to 7 ms of server CPU per request at c = 16 (docs/performance.md). Ours are
 *   created with the server (`--search-attribute`), so the cache has them from the start; one created later shows
 *   within a minute, the cache's refresh interval.
 *
 * The rate limits are per shard / per partition; docs/clusters.md says how they apply to a self-hosted cluster.
 */
export const TUNED_DYNAMIC_CONFIG: Readonly<Record<string, number | boolean>> = {
  'history.transferProcessorMaxPollRPS': 1000,
  'history.visibilityProcessorMaxPollRPS': 1000,
  'matching.forwarderMaxRatePerSecond': 1000,
  'matching.enableFairness': true,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
  'system.forceSearchAttributesCacheRefreshOnRead': false,
};

/** See {@link DevServerOptions.sqlitePragmas}. */
export const DEFAULT_SQLITE_PRAGMAS: Readonly<Record<string, string>> = { journal_mode: 'wal', synchronous: 'normal' };
const STOP_GRACE_MS = 10_000;
/** Startup output kept for errors; a Go panic is a few hundred lines, and its cause is near the top. */
const MAX_STARTUP_LINES = 1_000;
const SUMMARY_LINES = 20;
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
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options);
    } catch (err) {
      if (attempt >= PORT_RACE_ATTEMPTS || !lostPortRace(err, options)) throw err;
      options.log?.(`[temporal] a port was taken before the server bound it; retrying with new ports`);
    }
  }
}

/**
 * True when startup failed only because a port that was free a moment ago got taken. Ports are picked by
 * bind-and-close, here and inside the CLI for its internal services, so servers starting together can collide.
 * A port the caller fixed explicitly is not retried: it will still be taken next time.
 */
function lostPortRace(err: unknown, options: DevServerOptions): boolean {
  if (!(err instanceof DevServerStartError)) return false;
  const inUse = err.output.filter((line) => /address already in use/i.test(line));
  const fixed: number[] = [];
  if (options.port !== 0) fixed.push(options.port ?? DEFAULT_TEMPORAL_PORT);
  if (typeof options.uiPort === 'number' && options.uiPort !== 0) fixed.push(options.uiPort);
  if (options.metricsPort) fixed.push(options.metricsPort);
  if (options.uiPort === undefined && options.port !== 0) fixed.push((options.port ?? DEFAULT_TEMPORAL_PORT) + 1000);
  return inUse.length > 0 && !inUse.some((line) => fixed.some((port) => line.includes(`:${port}:`)));
}

async function launch(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const namespace = options.namespace ?? 'default';
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const log = options.log;

  const pickPort = options.port === 0;
  // A UI port derived from a random frontend port could collide with another server's; pick that one too.
  const pickUiPort = options.uiPort === 0 || (pickPort && options.uiPort === undefined);
  const pickMetricsPort = options.metricsPort === 0;
  const free = await findFreePorts(ip, Number(pickPort) + Number(pickUiPort) + Number(pickMetricsPort));
  const port = pickPort ? free.shift()! : (options.port ?? DEFAULT_TEMPORAL_PORT);
  const uiPort = options.uiPort === false ? false : pickUiPort ? free.shift()! : (options.uiPort ?? port + 1000);
  const metricsPort = pickMetricsPort ? free.shift()! : options.metricsPort;

  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port)];
  args.push(...(uiPort === false ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (options.uiCodecEndpoint && uiPort !== false) args.push('--ui-codec-endpoint', options.uiCodecEndpoint);
  if (metricsPort !== undefined) args.push('--metrics-port', String(metricsPort));
  if (options.dbFile) {
    const dbFile = resolve(options.dbFile);
    await mkdir(dirname(dbFile), { recursive: true });
    args.push('--db-filename', dbFile);
    for (const [pragma, value] of Object.entries(options.sqlitePragmas ?? DEFAULT_SQLITE_PRAGMAS)) {
      args.push('--sqlite-pragma', `${pragma}=${value}`);
    }
  }
  // `default` is always created; naming it again is harmless but only adds noise to the command line.
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  for (const [key, value] of Object.entries({ ...TUNED_DYNAMIC_CONFIG, ...options.dynamicConfig })) {
    // The CLI parses each value as JSON, so strings need their quotes.
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  args.push('--log-level', 'warn');

  const child = spawn(options.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Tests and scripts should be able to finish without calling stop(); the 'exit' hook below cleans up then.
  child.unref();
  // Kept only until the server is ready, for the startup error; afterwards lines just go to `log`.
  let startupOutput: string[] | undefined = [];
  for (const stream of [child.stdout, child.stderr]) {
    (stream as Socket).unref();
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      if (startupOutput && startupOutput.length < MAX_STARTUP_LINES) startupOutput.push(line);
      log?.(`[temporal] ${line}`);
    });
  }

  killOnParentExit(child);

  // 'close' rather than 'exit': it fires after the output pipes drain, so error messages include the last lines.
  const closed = new Promise<string>((resolveClosed) => {
    child.on('close', (code, signal) => resolveClosed(signal ? `signal ${signal}` : `code ${code}`));
    child.on('error', (err) => resolveClosed(`error: ${err.message}`));
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
      `temporal server start-dev (${options.cliPath}) ended (${how}) before it was ready:`,
      startupOutput ?? [],
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
      `temporal server start-dev at ${address} was not ready: ${errorMessage(err)}\nIts output:`,
      startupOutput ?? [],
    );
  }
  startupOutput = undefined;
  log?.(`[temporal] ready at ${address} in ${Date.now() - started} ms`);

  if (log) {
    void closed.then((how) => log(`[temporal] exited (${how})`));
  }
  return {
    address,
    uiUrl: uiPort === false ? undefined : `http://${formatAddress(connectHost(ip), uiPort)}`,
    metricsUrl: metricsPort === undefined ? undefined : `http://${formatAddress(connectHost(ip), metricsPort)}/metrics`,
    namespace,
    pid: child.pid!,
    stop,
  };
}

const running = new Set<ChildProcess>();

/**
 * SIGKILLs `child` if this process exits while it still runs. One shared 'exit' listener rather than one per
 * server, so benchmarks running many servers do not trip Node's max-listeners warning.
 */
function killOnParentExit(child: ChildProcess): void {
  if (running.size === 0) process.on('exit', killRunning);
  running.add(child);
  const forget = (): void => {
    running.delete(child);
    if (running.size === 0) process.off('exit', killRunning);
  };
  child.once('exit', forget);
  child.once('error', forget);
}

function killRunning(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** First and last lines of long output: a Go panic's message comes first, its goroutine dump after. */
function summarise(lines: readonly string[]): string {
  if (lines.length <= 2 * SUMMARY_LINES) return lines.join('\n');
  const omitted = lines.length - 2 * SUMMARY_LINES;
  return [...lines.slice(0, SUMMARY_LINES), `... (${omitted} lines omitted)`, ...lines.slice(-SUMMARY_LINES)].join(
    '\n',
  );
}
