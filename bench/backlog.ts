/**
 * `npm run bench -- --backlog N`: the scale run of issue 15. N requests wait on one model, then drain.
 *
 * Starts its own stack on free ports — a Temporal dev server (SQLite file, the tuned dynamic config), our API and a
 * control worker that serves no model, each in its own process — and a loopback webhook receiver in this process.
 * Then:
 * 1. submits N requests to one no-op model through the public HTTP API, `--backlog-concurrency` clients at a time,
 *    while no runner polls the model's task queue, so every accepted request waits;
 * 2. polls the status of ~20 requests spread over the backlog throughout, recording `queue_position` over time;
 * 3. starts `--backlog-runners` runner processes (`WORKER_CONTROL=false`, `WORKER_MODELS=<model>`) and waits until
 *    every accepted request's webhook has arrived (or deliveries stall);
 * 4. checks each accepted request was delivered exactly once with status OK, that the request workflows closed, and
 *    that no workflow history (visibility `HistoryLength`, `HistorySizeBytes`) grew with the backlog;
 * 5. samples RSS and CPU time of every process every few seconds and fits RSS against requests per phase.
 *
 * It talks to the queue only through HTTP, and to Temporal only to read (describe, list, count, history), so it
 * measures whichever queue implementation the tree has. Figures go to `bench-results/backlog-<time>.json`.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { startThrowawayTemporalCluster } from '../src/cluster/temporal-cluster';
import { TEMPORAL_SERVER_VERSION } from '../src/cluster/temporal-server';
import { CLAIM_CHECK_METADATA_KEY } from '../src/codec/claim-check';
import { ModelRegistry } from '../src/models/registry';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { ensureTemporalCli } from '../src/temporal/cli';
import { TUNED_DYNAMIC_CONFIG, startDevServer } from '../src/temporal/dev-server';
import {
  apiUrlOf,
  cpuTimeMs,
  printLastOutput,
  projectRoot,
  rssBytes,
  serviceEnv,
  spawnApi,
  spawnWorker,
  writeWorkflowBundle,
  type ServiceProcess,
} from './processes';
import { Progress } from './progress';
import { startRunScope } from './run-scope';
import { WebhookReceiver } from './receiver';
import { opsPerRequest, readServerOps, type ServerOps } from './server-metrics';
import { leastSquaresSlope, mib, round, summarize, table, type Summary } from './stats';

/** The options of the scale run, for `npm run bench -- --help`. */
export const BACKLOG_USAGE = `Scale run (issue 15): npm run bench -- --backlog N [options]

  --backlog N                 requests that wait on one model before any runner starts
  --backlog-concurrency C     concurrent submitting clients (default 32)
  --backlog-runners R         runner processes started once all N are accepted (default 1)
  --model-concurrency N       each runner's runnerConcurrency (default 16); the model's concurrency is R x N
  --delay-ms MS               how long each run of the no-op model takes (default 0)
  --track N                   requests whose status is polled throughout, spread over the backlog (default 20)
  --poll-interval-ms MS       pause between one tracked request's status polls (default 2000; 100 ms once its
                              queue_position is within 2 x the model's concurrency of the front while runners run)
  --sample-interval-ms MS     RSS / CPU sampling interval (default 5000)
  --stall-seconds S           the drain gives up after S seconds without a new delivery (default 300)
  --dynamic-config K=V        dev server dynamic config value (repeatable) on top of the tuned defaults
  --cluster                   run on the cluster topology's Temporal server on PostgreSQL (npm run cluster's,
                              its dynamic config in scripts/cluster/dynamicconfig.yaml) instead of the dev server
  --out FILE                  results file (default bench-results/backlog-<time>.json)
  --keep                      keep the temporary directory (database file, models file, bundle)`;

const MODEL_ID = 'bench/backlog';
const API_KEY = 'bench:bench-secret';
const AUTH = { authorization: `Key ${API_KEY}` };
/**
 * Tracked requests are polled fast once this many model slots close to the front, so the last positions before the
 * start are seen. Kept small: a status poll of a queued request may cost the stack a query, and 20 requests polled
 * every 100 ms slowed a 500-request drain measurably.
 */
const NEAR_FRONT_SLOTS = 2;
const FAST_POLL_MS = 100;
/** The first part of each phase (JIT, caches, heap sizing) is left out of the "after warm-up" RSS slope. */
const WARMUP_SHARE = 0.2;
/** After the last expected delivery, how long late duplicates may still arrive before they are counted. */
const DUPLICATE_SETTLE_MS = 5_000;
/** The bound: no workflow history longer than this (events) or larger than this (bytes). */
const HISTORY_LENGTH_LIMIT = 1000;
const HISTORY_BYTES_LIMIT = 1024 * 1024;
/** Histories scanned to find the largest few: anything above these (a request's history is a few dozen events). */
const LARGE_HISTORY_SCAN = { length: 200, bytes: 128 * 1024, max: 2_000 };

interface BacklogOptions {
  backlog: number;
  concurrency: number;
  runners: number;
  runnerConcurrency: number;
  delayMs: number;
  track: number;
  pollIntervalMs: number;
  sampleIntervalMs: number;
  stallSeconds: number;
  dynamicConfig: Record<string, string | number | boolean>;
  /** Run on the cluster topology's Temporal server (PostgreSQL) instead of the dev server. */
  cluster: boolean;
  out?: string;
  keep: boolean;
}

function parseBacklogOptions(argv: string[]): BacklogOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      backlog: { type: 'string' },
      'backlog-concurrency': { type: 'string', default: '32' },
      'backlog-runners': { type: 'string', default: '1' },
      'model-concurrency': { type: 'string', default: '16' },
      'delay-ms': { type: 'string', default: '0' },
      track: { type: 'string', default: '20' },
      'poll-interval-ms': { type: 'string', default: '2000' },
      'sample-interval-ms': { type: 'string', default: '5000' },
      'stall-seconds': { type: 'string', default: '300' },
      'dynamic-config': { type: 'string', multiple: true, default: [] },
      cluster: { type: 'boolean', default: false },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(BACKLOG_USAGE);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, min = 1): number => {
    const n = Number(raw);
    if (raw === undefined || !Number.isInteger(n) || n < min) {
      throw new Error(`--${name} must be an integer >= ${min}, got ${raw}`);
    }
    return n;
  };
  return {
    backlog: int('backlog', values.backlog),
    concurrency: int('backlog-concurrency', values['backlog-concurrency']),
    runners: int('backlog-runners', values['backlog-runners']),
    runnerConcurrency: int('model-concurrency', values['model-concurrency']),
    delayMs: int('delay-ms', values['delay-ms'], 0),
    track: int('track', values.track, 2),
    pollIntervalMs: int('poll-interval-ms', values['poll-interval-ms']),
    sampleIntervalMs: int('sample-interval-ms', values['sample-interval-ms'], 100),
    stallSeconds: int('stall-seconds', values['stall-seconds']),
    dynamicConfig: Object.fromEntries(
      values['dynamic-config'].map((kv) => {
        const eq = kv.indexOf('=');
        if (eq < 1) throw new Error(`--dynamic-config takes KEY=VALUE, got ${kv}`);
        const raw = kv.slice(eq + 1);
        // Values are JSON to the CLI; bare words are strings.
        try {
          return [kv.slice(0, eq), JSON.parse(raw) as string | number | boolean];
        } catch {
          return [kv.slice(0, eq), raw];
        }
      }),
    ),
    cluster: values.cluster,
    out: values.out,
    keep: values.keep,
  };
}

/** The Temporal server of the run: the dev server on a SQLite file, or (`--cluster`) the cluster topology's. */
async function startTemporal(
  options: BacklogOptions,
  dir: string,
  log: (line: string) => void,
): Promise<{
  address: string;
  pid: number;
  /** The server's Prometheus endpoint (the dev server's); undefined on the cluster. */
  metricsUrl?: string;
  description: Record<string, unknown>;
  stop(): Promise<void>;
}> {
  if (options.cluster) {
    if (Object.keys(options.dynamicConfig).length > 0) {
      throw new Error('--dynamic-config sets the dev server; the cluster reads scripts/cluster/dynamicconfig.yaml');
    }
    // PostgreSQL runs as the `postgres` user when we run as root: it must be able to enter the directory.
    const dataDir = join(dir, 'cluster');
    mkdirSync(dataDir);
    chmodSync(dir, 0o755);
    chmodSync(dataDir, 0o755);
    const cluster = await startThrowawayTemporalCluster({ projectRoot, dataDir, log });
    return {
      address: cluster.address,
      pid: cluster.temporal.pid,
      description: {
        server: `Temporal server ${TEMPORAL_SERVER_VERSION} on PostgreSQL`,
        dynamicConfig: 'scripts/cluster/dynamicconfig.yaml',
      },
      stop: () => cluster.stop(),
    };
  }
  const cliPath = await ensureTemporalCli({ projectRoot, log });
  const server = await startDevServer({
    searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
    cliPath,
    dbFile: join(dir, 'temporal.db'),
    port: 0,
    uiPort: false,
    metricsPort: 0,
    dynamicConfig: options.dynamicConfig,
  });
  return {
    address: server.address,
    pid: server.pid,
    metricsUrl: server.metricsUrl,
    description: { cli: cliPath, dynamicConfig: { ...TUNED_DYNAMIC_CONFIG, ...options.dynamicConfig } },
    stop: () => server.stop(),
  };
}

/**
 * The models file of the run: one no-op model whose queue may hold the whole backlog. Validated here with the
 * registry's own schema, so a cap on `maxQueueLength` below N stops the run before anything starts.
 */
function modelsFileFor(options: BacklogOptions): unknown {
  const file = {
    models: [
      {
        id: MODEL_ID,
        backend: { kind: 'builtin', name: 'noop', options: { delayMs: options.delayMs } },
        concurrency: options.runners * options.runnerConcurrency,
        runnerConcurrency: options.runnerConcurrency,
        maxQueueLength: options.backlog,
        // The backlog waits before its runs start; the timeout bounds one run only.
        timeoutSeconds: 60 + Math.ceil(options.delayMs / 1000),
      },
    ],
  };
  try {
    ModelRegistry.fromObject(file, 'the scale run models file');
  } catch (err) {
    const message = (err as Error).message;
    throw new BacklogRefusedError(
      message.includes('maxQueueLength')
        ? `the model registry refuses maxQueueLength ${options.backlog}: a backlog of ${options.backlog} cannot wait ` +
            `on one model on this tree (the cap on maxQueueLength in src/models/registry.ts is below it).\n${message}`
        : `the model registry refuses the scale run's models file (bench/backlog.ts modelsFileFor).\n${message}`,
    );
  }
  return file;
}

/** The run cannot be made on this tree (e.g. the registry caps the queue below N); nothing was started. */
class BacklogRefusedError extends Error {
  override name = 'BacklogRefusedError';
}

/** One status poll of a tracked request. */
interface PositionSample {
  /** Epoch ms when the answer arrived. */
  t: number;
  /** How long the status request took. */
  ms: number;
  status: string;
  position?: number;
}

/** A request whose status is polled throughout the run. */
interface Tracked {
  /** 0-based place in the order submits were acknowledged. */
  rank: number;
  id: string;
  acceptedAt: number;
  /** `queue_position` of the submit's own answer. */
  submitPosition?: number;
  samples: PositionSample[];
  pollErrors: number;
  done: boolean;
}

/** One RSS / CPU sample of every process. */
interface ResourceSample {
  t: number;
  phase: 'build' | 'drain';
  accepted: number;
  delivered: number;
  rss: Record<string, number | undefined>;
  cpuMs: Record<string, number | undefined>;
}

/** The run's shared counters and what was seen per request. */
class RunState {
  accepted = 0;
  refused = 0;
  errors = 0;
  readonly errorMessages: string[] = [];
  /** Latency of each accepted submit, ms. */
  readonly submitMs: number[] = [];
  /** Request id -> rank (acknowledgement order). */
  readonly rankOf = new Map<string, number>();
  readonly tracked: Tracked[] = [];
  phase: 'build' | 'drain' = 'build';
  runnersStartedAt?: number;
  stopPolling = false;

  constructor(readonly receiver: WebhookReceiver) {}

  /** Accepted requests whose webhook arrived with a 2xx answer, counted once each. */
  get delivered(): number {
    return this.receiver.firstAccepted.size;
  }

  error(message: string): void {
    this.errors++;
    if (this.errorMessages.length < 20) this.errorMessages.push(message);
  }
}

/** Ranks of the requests to track: the first, the last and evenly between. */
function trackedRanks(n: number, count: number): Set<number> {
  const k = Math.min(n, count);
  return new Set(Array.from({ length: k }, (_, i) => (k === 1 ? 0 : Math.round((i * (n - 1)) / (k - 1)))));
}

/** Polls one tracked request's status until it completes or polling stops. */
async function pollTracked(apiUrl: string, state: RunState, tracked: Tracked, options: BacklogOptions) {
  const url = `${apiUrl}/${MODEL_ID}/requests/${tracked.id}/status`;
  while (!state.stopPolling && !tracked.done) {
    let last: PositionSample | undefined;
    const sent = Date.now();
    try {
      const res = await fetch(url, { headers: AUTH });
      const body = (await res.json()) as { status?: unknown; queue_position?: unknown };
      if (!res.ok || typeof body.status !== 'string') throw new Error(`status answered ${res.status}`);
      last = {
        t: Date.now(),
        ms: Date.now() - sent,
        status: body.status,
        position: typeof body.queue_position === 'number' ? body.queue_position : undefined,
      };
      tracked.samples.push(last);
      if (body.status === 'COMPLETED') tracked.done = true;
    } catch {
      tracked.pollErrors++;
    }
    const near =
      state.runnersStartedAt !== undefined &&
      last?.status === 'IN_QUEUE' &&
      (last.position ?? 0) <= NEAR_FRONT_SLOTS * options.runners * options.runnerConcurrency;
    if (!tracked.done) await sleep(near ? FAST_POLL_MS : options.pollIntervalMs);
  }
}

/** Submits `options.backlog` requests with `options.concurrency` clients, starting a poller per tracked rank. */
async function buildBacklog(
  apiUrl: string,
  state: RunState,
  options: BacklogOptions,
  log: (line: string) => void,
  pollers: Promise<void>[],
) {
  const ranks = trackedRanks(options.backlog, options.track);
  const url = `${apiUrl}/${MODEL_ID}?fal_webhook=${encodeURIComponent(state.receiver.url)}`;
  let issued = 0;
  const started = Date.now();
  const line = () => {
    const seconds = (Date.now() - started) / 1000;
    const rate = state.accepted / Math.max(seconds, 0.001);
    const left = options.backlog - issued;
    return (
      `backlog ${seconds.toFixed(0)} s: accepted ${state.accepted}/${options.backlog}, refused ${state.refused}, ` +
      `errors ${state.errors}, ${rate.toFixed(1)} req/s, ETA ${rate > 0 ? formatSeconds(left / rate) : '?'}`
    );
  };
  const ticker = setInterval(() => log(line()), 5_000);
  const client = async () => {
    while (issued < options.backlog) {
      issued++;
      const sent = performance.now();
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { ...AUTH, 'content-type': 'application/json' },
          body: '{"prompt":"backlog"}',
        });
        const body = (await res.json().catch(() => ({}))) as { request_id?: unknown; queue_position?: unknown };
        if (res.status === 429) {
          state.refused++;
        } else if (res.status !== 200 || typeof body.request_id !== 'string') {
          state.error(`submit answered ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
        } else {
          const rank = state.accepted++;
          state.submitMs.push(performance.now() - sent);
          state.rankOf.set(body.request_id, rank);
          if (ranks.has(rank)) {
            const tracked: Tracked = {
              rank,
              id: body.request_id,
              acceptedAt: Date.now(),
              submitPosition: typeof body.queue_position === 'number' ? body.queue_position : undefined,
              samples: [],
              pollErrors: 0,
              done: false,
            };
            state.tracked.push(tracked);
            pollers.push(pollTracked(apiUrl, state, tracked, options));
          }
        }
      } catch (err) {
        state.error(`submit failed: ${(err as Error).message}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, client));
  } finally {
    clearInterval(ticker);
  }
  log(line());
  return { seconds: round((Date.now() - started) / 1000, 1) };
}

/** Waits until every accepted request's webhook arrived, or no delivery came for `stallSeconds`. */
async function drain(state: RunState, options: BacklogOptions, log: (line: string) => void) {
  const started = Date.now();
  const startDelivered = state.delivered;
  let lastCount = state.delivered;
  let lastChange = Date.now();
  let lastLog = 0;
  let stalled = false;
  while (state.delivered < state.accepted) {
    await sleep(250);
    const now = Date.now();
    if (state.delivered !== lastCount) {
      lastCount = state.delivered;
      lastChange = now;
    } else if (now - lastChange > options.stallSeconds * 1000) {
      stalled = true;
      break;
    }
    if (now - lastLog >= 5_000) {
      lastLog = now;
      const seconds = (now - started) / 1000;
      const rate = (state.delivered - startDelivered) / Math.max(seconds, 0.001);
      const left = state.accepted - state.delivered;
      log(
        `drain ${seconds.toFixed(0)} s: delivered ${state.delivered}/${state.accepted}, ${rate.toFixed(1)} req/s, ` +
          `ETA ${rate > 0 ? formatSeconds(left / rate) : '?'}`,
      );
    }
  }
  const seconds = (Date.now() - started) / 1000;
  log(`drain ${seconds.toFixed(0)} s: delivered ${state.delivered}/${state.accepted}${stalled ? ' (stalled)' : ''}`);
  return {
    seconds: round(seconds, 1),
    stalled,
    throughputRps: round((state.delivered - startDelivered) / Math.max(seconds, 0.001)),
  };
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.round(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** Samples RSS and CPU time of `processes` (read at each tick: runners join later) every `everyMs`. */
function startResourceSampler(
  processes: () => Record<string, number | undefined>,
  state: RunState,
  everyMs: number,
): { samples: ResourceSample[]; take(): void; stop(): void } {
  const samples: ResourceSample[] = [];
  const take = () => {
    const pids = processes();
    samples.push({
      t: Date.now(),
      phase: state.phase,
      accepted: state.accepted,
      delivered: state.delivered,
      rss: Object.fromEntries(
        Object.entries(pids).map(([n, pid]) => [n, pid === undefined ? undefined : rssBytes(pid)]),
      ),
      cpuMs: Object.fromEntries(
        Object.entries(pids).map(([n, pid]) => [n, pid === undefined ? undefined : cpuTimeMs(pid)]),
      ),
    });
  };
  const timer = setInterval(take, everyMs);
  return { samples, take, stop: () => clearInterval(timer) };
}

/** Least-squares slope of y against x, in y units per `per` x units. */
function slope(points: { x: number; y: number }[], per: number): number | undefined {
  if (points.length < 3) return undefined;
  const perX = leastSquaresSlope(points);
  return perX === undefined ? undefined : perX * per;
}

/**
 * Per process and phase: RSS at start, peak and end, the least-squares slope of RSS against requests (accepted while
 * building, delivered while draining) in MiB per 10,000 requests, and CPU time per request.
 */
function resourceFigures(samples: ResourceSample[]) {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.rss)))];
  const phase = (p: ResourceSample['phase']) => {
    const ps = samples.filter((s) => s.phase === p);
    const x = (s: ResourceSample) => (p === 'build' ? s.accepted : s.delivered);
    return Object.fromEntries(
      names.flatMap((name) => {
        const own = ps.filter((s) => s.rss[name] !== undefined);
        if (own.length === 0) return [];
        const first = own[0]!;
        const last = own.at(-1)!;
        const requests = x(last) - x(first);
        const cpu = (s: ResourceSample) => s.cpuMs[name] ?? 0;
        const points = own.map((s) => ({ x: x(s), y: s.rss[name]! }));
        const mibSlope = slope(points, 10_000);
        const warm = x(first) + WARMUP_SHARE * requests;
        const warmSlope = slope(
          points.filter((p) => p.x >= warm),
          10_000,
        );
        return [
          [
            name,
            {
              samples: own.length,
              startMiB: mib(first.rss[name]),
              peakMiB: mib(Math.max(...own.map((s) => s.rss[name]!))),
              endMiB: mib(last.rss[name]),
              slopeMiBPer10k: mibSlope === undefined ? undefined : round(mibSlope / 1024 / 1024, 2),
              slopeAfterWarmupMiBPer10k: warmSlope === undefined ? undefined : round(warmSlope / 1024 / 1024, 2),
              cpuSeconds: round((cpu(last) - cpu(first)) / 1000, 1),
              cpuMsPerRequest: requests > 0 ? round((cpu(last) - cpu(first)) / requests, 2) : undefined,
            },
          ],
        ];
      }),
    );
  };
  return { build: phase('build'), drain: phase('drain') };
}

/**
 * What the tracked requests' `queue_position` said over time, against the truth as far as this process can know it.
 *
 * The reference is `ahead = rank - (requests of lower rank whose webhook had arrived by the poll)`: requests submitted
 * before this one and not finished yet. The true number waiting ahead is at most that (some of them run: at most the
 * model's concurrency) and differs by up to the submit concurrency either way, since the server may have queued
 * concurrent submits in another order than their answers arrived. A position inside
 * [ahead - concurrency - clients, ahead + clients] counts as within tolerance.
 */
function positionFigures(state: RunState, options: BacklogOptions, origin: number) {
  const slots = options.runners * options.runnerConcurrency;
  const deliveredAt = new Map<number, number>();
  for (const [id, d] of state.receiver.firstAccepted) {
    const rank = state.rankOf.get(id);
    if (rank !== undefined) deliveredAt.set(rank, d.at);
  }
  return [...state.tracked]
    .sort((a, b) => a.rank - b.rank)
    .map((tr) => {
      // Arrival times of the webhooks of requests ahead, sorted: the number finished by t is a binary search.
      const times = [...deliveredAt].filter(([rank]) => rank < tr.rank).map(([, at]) => at);
      times.sort((a, b) => a - b);
      const finishedBy = (t: number) => {
        let lo = 0;
        let hi = times.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (times[mid]! <= t) lo = mid + 1;
          else hi = mid;
        }
        return lo;
      };
      const queued = tr.samples.filter((s) => s.status === 'IN_QUEUE' && s.position !== undefined);
      // Status reads only: a task-queue model's submit answers 0 (docs/queue.md), which is not a reading of the line.
      const positions = queued.map((s) => s.position!);
      let rises = 0;
      let largestRise = 0;
      for (let i = 1; i < positions.length; i++) {
        const rise = positions[i]! - positions[i - 1]!;
        if (rise > 0) {
          rises++;
          largestRise = Math.max(largestRise, rise);
        }
      }
      const firstLaterIndex = tr.samples.findIndex((s) => s.status !== 'IN_QUEUE');
      const backToQueue =
        firstLaterIndex >= 0 && tr.samples.slice(firstLaterIndex).some((s) => s.status === 'IN_QUEUE');
      const lastQueued = queued.at(-1);
      const firstLater = firstLaterIndex >= 0 ? tr.samples[firstLaterIndex] : undefined;
      let maxOver = 0;
      let maxUnder = 0;
      let outside = 0;
      let zerosFar = 0;
      for (const s of queued) {
        const ahead = tr.rank - finishedBy(s.t);
        if (s.position === 0 && ahead > slots + options.concurrency) zerosFar++;
        maxOver = Math.max(maxOver, s.position! - ahead);
        maxUnder = Math.max(maxUnder, ahead - s.position!);
        if (s.position! > ahead + options.concurrency || s.position! < ahead - slots - options.concurrency) outside++;
      }
      return {
        rank: tr.rank,
        id: tr.id,
        polls: tr.samples.length,
        pollErrors: tr.pollErrors,
        pollMs: summarize(tr.samples.map((s) => s.ms)),
        submitPosition: tr.submitPosition,
        firstPolledPosition: queued[0]?.position,
        onlyMovedDown: rises === 0,
        rises,
        largestRise,
        lastQueuedPosition: lastQueued?.position,
        sawZero: queued.some((s) => s.position === 0),
        /** ms between the last IN_QUEUE answer and the first later state: how closely the front was watched. */
        lastQueuedToStartedMs: lastQueued && firstLater ? firstLater.t - lastQueued.t : undefined,
        firstLaterStatus: firstLater?.status,
        completed: tr.done,
        backToQueue,
        maxOverReference: maxOver,
        maxUnderReference: maxUnder,
        samplesOutsideTolerance: outside,
        /** Answers of position 0 while more than the tolerance was still ahead (a position the queue did not know). */
        zerosFarFromFront: zerosFar,
        queuedSamples: queued.length,
        /** Every poll: [seconds since the run started, status, queue_position, reference (rank - finished ahead)]. */
        series: tr.samples.map((s) => [
          round((s.t - origin) / 1000, 1),
          s.status,
          s.position,
          tr.rank - finishedBy(s.t),
        ]),
      };
    });
}

/**
 * Sum of the bytes of every binary field (payload data) in one history event: its payloads' weight. A payload the
 * claim check moved to the store counts at its original size (its reference says it), since it is still one payload
 * that grows with whatever it carries.
 */
function payloadBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  const claimed = claimedBytes(value);
  if (claimed !== undefined) return claimed;
  if (Array.isArray(value)) return value.reduce<number>((a, v) => a + payloadBytes(v), 0);
  if (value && typeof value === 'object') {
    return Object.values(value as Record<string, unknown>).reduce<number>((a, v) => a + payloadBytes(v), 0);
  }
  return 0;
}

/** The original size of a claim-check reference payload, or undefined for anything else. */
function claimedBytes(value: unknown): number | undefined {
  const payload = value as { metadata?: Record<string, unknown>; data?: unknown } | null;
  if (!payload?.metadata?.[CLAIM_CHECK_METADATA_KEY] || !(payload.data instanceof Uint8Array)) return undefined;
  try {
    const bytes = (JSON.parse(Buffer.from(payload.data).toString('utf8')) as { bytes?: unknown }).bytes;
    return typeof bytes === 'number' ? bytes : payload.data.byteLength;
  } catch {
    return payload.data.byteLength;
  }
}

/** How many claim-check references one history event holds. */
function claimedCount(value: unknown): number {
  if (claimedBytes(value) !== undefined) return 1;
  if (Array.isArray(value)) return value.reduce<number>((a, v) => a + claimedCount(v), 0);
  if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    return Object.values(value as Record<string, unknown>).reduce<number>((a, v) => a + claimedCount(v), 0);
  }
  return 0;
}

/**
 * Workflows whose history exceeds the bounds (from visibility: closed runs, continued-as-new runs included),
 * the largest few histories of any workflow (running ones described directly, since visibility may not have their
 * current size), and the largest single event's payload bytes in those.
 */
async function historyFigures(client: Client) {
  const over = `HistoryLength > ${HISTORY_LENGTH_LIMIT} OR HistorySizeBytes > ${HISTORY_BYTES_LIMIT}`;
  const overCount = (await client.workflow.count(over)).count;
  type Row = { workflowId: string; runId: string; type: string; status: string; events: number; bytes?: number };
  const rows = new Map<string, Row>();
  const add = (w: {
    workflowId: string;
    runId: string;
    type: string;
    status: { name: string };
    historyLength: number;
    historySize?: number;
  }) =>
    rows.set(`${w.workflowId}/${w.runId}`, {
      workflowId: w.workflowId,
      runId: w.runId,
      type: w.type,
      status: w.status.name,
      events: w.historyLength,
      bytes: w.historySize,
    });
  let scanned = 0;
  for await (const w of client.workflow.list({
    query: `HistoryLength > ${LARGE_HISTORY_SCAN.length} OR HistorySizeBytes > ${LARGE_HISTORY_SCAN.bytes}`,
  })) {
    add(w);
    if (++scanned >= LARGE_HISTORY_SCAN.max) break;
  }
  let runningOver = 0;
  for await (const w of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    const d = await client.workflow.getHandle(w.workflowId, w.runId).describe();
    add(d);
    if (d.historyLength > HISTORY_LENGTH_LIMIT || (d.historySize ?? 0) > HISTORY_BYTES_LIMIT) runningOver++;
  }
  const largest = [...rows.values()].sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0) || b.events - a.events).slice(0, 5);
  const withPayloads = await Promise.all(
    largest.map(async (row) => {
      const history = await client.workflow.getHandle(row.workflowId, row.runId).fetchHistory();
      const events = history.events ?? [];
      return {
        ...row,
        largestEventPayloadBytes: Math.max(0, ...events.map(payloadBytes)),
        claimCheckedPayloads: events.reduce((a, e) => a + claimedCount(e), 0),
      };
    }),
  );
  return {
    bounds: { historyLength: HISTORY_LENGTH_LIMIT, historySizeBytes: HISTORY_BYTES_LIMIT },
    /** Runs over the bounds in visibility (closed runs, and running ones as far as visibility has their size). */
    workflowsOverBounds: overCount,
    /** Running workflows over the bounds as `describe` gives their current history. */
    runningOverBounds: runningOver,
    scan: `visibility: HistoryLength > ${LARGE_HISTORY_SCAN.length} OR HistorySizeBytes > ${LARGE_HISTORY_SCAN.bytes} (first ${LARGE_HISTORY_SCAN.max}), plus every running workflow described`,
    largest: withPayloads,
  };
}

/** Every accepted request delivered once with status OK; the request workflows closed. */
async function deliveryFigures(state: RunState, client: Client) {
  const perRequest = new Map<string, { ok: number; notOk: number; statuses: Set<string> }>();
  let unknown = 0;
  for (const d of state.receiver.deliveries) {
    if (!d.requestId || !state.rankOf.has(d.requestId)) {
      unknown++;
      continue;
    }
    const entry = perRequest.get(d.requestId) ?? { ok: 0, notOk: 0, statuses: new Set<string>() };
    const status = (d.body as { status?: unknown } | undefined)?.status;
    entry.statuses.add(String(status));
    if (d.answered === 200 && status === 'OK') entry.ok++;
    else entry.notOk++;
    perRequest.set(d.requestId, entry);
  }
  const lostIds = [...state.rankOf.keys()].filter((id) => !perRequest.has(id));
  const duplicates = [...perRequest.values()].filter((e) => e.ok + e.notOk > 1).length;
  const notOk = [...perRequest.values()].filter((e) => e.ok === 0).length;
  const exactlyOnceOk = [...perRequest.values()].filter((e) => e.ok === 1 && e.notOk === 0).length;

  // Visibility lags the histories by a little: ask until the request workflows show closed, for up to 30 s.
  const first = state.tracked[0];
  const requestType = first ? (await client.workflow.getHandle(first.id).describe()).type : undefined;
  let running = 0;
  let runningAccepted: string[] = [];
  for (let attempt = 0; attempt < 30; attempt++) {
    runningAccepted = [];
    running = 0;
    for await (const w of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
      running++;
      if (state.rankOf.has(w.workflowId)) runningAccepted.push(w.workflowId);
    }
    if (runningAccepted.length === 0) break;
    await sleep(1000);
  }
  const runningOther: Record<string, number> = {};
  for await (const w of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    if (!state.rankOf.has(w.workflowId)) runningOther[w.type] = (runningOther[w.type] ?? 0) + 1;
  }
  const byStatus = async (status: string) =>
    requestType
      ? (await client.workflow.count(`WorkflowType="${requestType}" AND ExecutionStatus="${status}"`)).count
      : undefined;
  const trackedHistories = await Promise.all(
    state.tracked.map(async (t) => {
      const d = await client.workflow.getHandle(t.id).describe();
      return { events: d.historyLength, bytes: d.historySize };
    }),
  );
  return {
    accepted: state.accepted,
    deliveredOk: [...perRequest.values()].filter((e) => e.ok > 0).length,
    exactlyOnceOk,
    lost: lostIds.length,
    lostExamples: lostIds.slice(0, 10),
    duplicates,
    notOk,
    unknownDeliveries: unknown,
    deliveries: state.receiver.deliveries.length,
    requestWorkflowType: requestType,
    requestWorkflows: {
      completed: await byStatus('Completed'),
      running: await byStatus('Running'),
      failed: await byStatus('Failed'),
      terminated: await byStatus('Terminated'),
      timedOut: await byStatus('TimedOut'),
    },
    acceptedStillRunning: runningAccepted.length,
    acceptedStillRunningExamples: runningAccepted.slice(0, 10),
    otherRunningWorkflows: runningOther,
    runningWorkflowsTotal: running,
    trackedRequestHistory: {
      events: summarize(trackedHistories.map((h) => h.events)),
      bytes: summarize(trackedHistories.flatMap((h) => (h.bytes === undefined ? [] : [h.bytes]))),
    },
  };
}

/** Runs the scale run with the command line `argv` (the `npm run bench --` arguments). */
export async function runBacklog(argv: string[]): Promise<void> {
  const options = parseBacklogOptions(argv);
  let modelsFile: unknown;
  try {
    modelsFile = modelsFileFor(options);
  } catch (err) {
    if (!(err instanceof BacklogRefusedError)) throw err;
    console.error(`backlog run NOT started: ${err.message}`);
    process.exitCode = 2;
    return;
  }
  const progress = new Progress();
  const log = (line: string) => progress.log(line);
  const startedAt = new Date();
  const loadStart = loadavg();
  const { dir, cleanups, cleanup } = startRunScope('fal-queue-backlog-', { keep: options.keep, log: log });
  const services: Record<string, ServiceProcess> = {};
  try {
    log(`temporary directory ${dir}`);
    log(
      `starting ${options.cluster ? "the cluster topology's Temporal server" : 'the Temporal dev server'} and bundling workflows`,
    );
    const [temporal, bundle] = await Promise.all([
      startTemporal(options, dir, log),
      writeWorkflowBundle(dir, 'workflows.js'),
    ]);
    cleanups.push(() => temporal.stop());
    const receiver = await WebhookReceiver.start();
    cleanups.push(() => receiver.close());
    const connection = await Connection.connect({ address: temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection });

    const modelsPath = join(dir, 'models.json');
    writeFileSync(modelsPath, JSON.stringify(modelsFile));
    const env = serviceEnv({
      temporalAddress: temporal.address,
      taskQueue: `backlog-${startedAt.getTime()}`,
      dataDir: dir,
      modelsFile: modelsPath,
      workflowBundlePath: bundle,
      apiKeys: API_KEY,
      webhookSchedule: '0s,1s,5s',
      webhookTimeoutMs: 10_000,
    });
    log('starting the API and a control worker that serves no model');
    // An empty WORKER_MODELS: this worker runs the workflows and webhooks only, so nothing takes the model's runs.
    services.controlWorker = spawnWorker({ ...env, WORKER_CONTROL: 'true', WORKER_MODELS: '' });
    services.api = spawnApi({ ...env, PORT: '0' });
    cleanups.push(() => Promise.all(Object.values(services).map((p) => p.stop())));
    const [, apiLine] = await Promise.all([services.controlWorker.ready, services.api.ready]);
    const apiUrl = apiUrlOf(apiLine);

    const state = new RunState(receiver);
    // Runners join once ready: a process still loading its modules would start their series near 0 MiB.
    const sampled: Record<string, number> = {
      api: services.api.pid,
      controlWorker: services.controlWorker.pid,
      temporal: temporal.pid,
    };
    const sampler = startResourceSampler(() => sampled, state, options.sampleIntervalMs);
    cleanups.push(async () => sampler.stop());
    sampler.take();

    const pollers: Promise<void>[] = [];
    log(`submitting ${options.backlog} requests to ${MODEL_ID} with ${options.concurrency} clients; no runner yet`);
    const opsAtStart = await readServerOps(temporal.metricsUrl);
    const build = await buildBacklog(apiUrl, state, options, log, pollers);
    sampler.take();
    const opsAfterBuild = await readServerOps(temporal.metricsUrl);

    state.phase = 'drain';
    log(`starting ${options.runners} runner process(es) of ${options.runnerConcurrency} slots`);
    for (let i = 1; i <= options.runners; i++) {
      services[`runner${i}`] = spawnWorker({ ...env, WORKER_CONTROL: 'false', WORKER_MODELS: MODEL_ID });
    }
    const runners = Object.entries(services).filter(([name]) => name.startsWith('runner'));
    state.runnersStartedAt = Date.now();
    await Promise.all(runners.map(([, p]) => p.ready));
    for (const [name, p] of runners) sampled[name] = p.pid;
    sampler.take();
    const drained = await drain(state, options, log);
    const opsAfterDrain = await readServerOps(temporal.metricsUrl);
    await sleep(DUPLICATE_SETTLE_MS);
    sampler.take();
    state.stopPolling = true;
    await Promise.all(pollers);
    sampler.stop();

    log('checking deliveries, workflows and histories');
    const deliveries = await deliveryFigures(state, client);
    const histories = await historyFigures(client);
    const positions = positionFigures(state, options, startedAt.getTime());
    const resources = resourceFigures(sampler.samples);
    const finishedAt = new Date();

    const results = {
      version: 1,
      kind: 'backlog',
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      wallSeconds: round((finishedAt.getTime() - startedAt.getTime()) / 1000, 1),
      command: `npm run bench -- ${argv.join(' ')}`,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        memoryMiB: mib(totalmem()),
        loadAverageAtStart: loadStart.map((l) => round(l)),
        loadAverageAtEnd: loadavg().map((l) => round(l)),
        node: process.version,
      },
      options,
      temporal: temporal.description,
      layout:
        'separate processes: Temporal (dev server on a SQLite file, or with --cluster the Temporal server on PostgreSQL), API (src/server.ts), control worker (src/worker.ts, WORKER_MODELS empty), runner(s) (src/worker.ts, WORKER_CONTROL=false) started after the backlog is built; clients, status pollers and webhook receiver in the bench process',
      model: (modelsFile as { models: unknown[] }).models[0],
      build: {
        ...build,
        requested: options.backlog,
        accepted: state.accepted,
        refused: state.refused,
        errors: state.errors,
        errorExamples: state.errorMessages,
        acceptRps: round(state.accepted / Math.max(build.seconds, 0.001)),
        submitMs: summarize(state.submitMs),
      },
      drain: drained,
      // Database calls per request by phase (the status pollers' counts included), from the server's own counters.
      serverOpsPerRequest: {
        build: opsPerRequest(opsAtStart, opsAfterBuild, state.accepted),
        drain: opsPerRequest(opsAfterBuild, opsAfterDrain, deliveries.deliveredOk),
      },
      deliveries,
      histories,
      positions: {
        reference:
          'ahead = rank in acknowledgement order - requests of lower rank whose webhook had arrived by the poll; tolerance [ahead - model concurrency - submit clients, ahead + submit clients]',
        tracked: positions,
      },
      resources,
      resourceSeries: sampler.samples.map((s) => ({
        t: round((s.t - startedAt.getTime()) / 1000, 1),
        phase: s.phase,
        accepted: s.accepted,
        delivered: s.delivered,
        rssMiB: Object.fromEntries(Object.entries(s.rss).map(([n, v]) => [n, mib(v)])),
        cpuS: Object.fromEntries(
          Object.entries(s.cpuMs).map(([n, v]) => [n, v === undefined ? undefined : round(v / 1000, 1)]),
        ),
      })),
    };
    const out =
      options.out ??
      join(projectRoot, 'bench-results', `backlog-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(report(results));
    console.log(`\nresults: ${relative(process.cwd(), out)}`);
    const ok =
      state.accepted === options.backlog &&
      deliveries.lost === 0 &&
      deliveries.duplicates === 0 &&
      deliveries.notOk === 0 &&
      deliveries.acceptedStillRunning === 0;
    if (!ok) process.exitCode = 1;
  } catch (err) {
    printLastOutput(services);
    throw err;
  } finally {
    await cleanup();
  }
}

type Results = {
  startedAt: string;
  wallSeconds: number;
  command: string;
  machine: { cpus: number; loadAverageAtStart: number[] };
  options: BacklogOptions;
  build: {
    requested: number;
    accepted: number;
    refused: number;
    errors: number;
    seconds: number;
    acceptRps: number;
    submitMs?: Summary;
  };
  drain: { seconds: number; stalled: boolean; throughputRps: number };
  serverOpsPerRequest: { build?: ServerOps; drain?: ServerOps };
  deliveries: Awaited<ReturnType<typeof deliveryFigures>>;
  histories: Awaited<ReturnType<typeof historyFigures>>;
  positions: { tracked: ReturnType<typeof positionFigures> };
  resources: ReturnType<typeof resourceFigures>;
};

/** The server's database calls per request, by phase; nothing on a server without a metrics endpoint (the cluster). */
function serverOpsLines({ build, drain }: Results['serverOpsPerRequest']): string[] {
  if (!build || !drain) return [];
  const keys = [...new Set([...Object.keys(build), ...Object.keys(drain)])].sort();
  return [
    '',
    'Temporal server: database calls per request, by store and operation (the server’s own metrics)',
    '',
    table(
      ['store operation', 'build', 'drain'],
      keys.map((key) => [key, build[key], drain[key]]),
    ),
  ];
}

/** The human-readable summary. */
function report(r: Results): string {
  const d = r.deliveries;
  const yes = (b: boolean) => (b ? 'yes' : 'NO');
  const lines = [
    '',
    `fal-queue-temporal scale run — ${r.startedAt}, ${r.wallSeconds} s in all`,
    `command: ${r.command}`,
    `machine: ${r.machine.cpus} cores, load ${JSON.stringify(r.machine.loadAverageAtStart)} at start`,
    '',
    table(
      ['phase', 'requests', 'seconds', 'req/s', 'notes'],
      [
        [
          'build (no runner)',
          r.build.accepted,
          r.build.seconds,
          r.build.acceptRps,
          `${r.build.requested} submitted, ${r.build.refused} refused (429), ${r.build.errors} errors, ` +
            `c=${r.options.concurrency}, submit p50/p99 ${r.build.submitMs?.p50}/${r.build.submitMs?.p99} ms`,
        ],
        [
          'drain',
          d.deliveredOk,
          r.drain.seconds,
          r.drain.throughputRps,
          `${r.options.runners} runner(s) x ${r.options.runnerConcurrency} slots${r.drain.stalled ? ', STALLED' : ''}`,
        ],
      ],
    ),
    '',
    'Deliveries and workflows',
    '',
    table(
      ['check', 'value', 'ok'],
      [
        ['accepted', d.accepted, yes(d.accepted === r.build.requested)],
        ['delivered exactly once, status OK', d.exactlyOnceOk, yes(d.exactlyOnceOk === d.accepted)],
        ['lost (no webhook)', d.lost, yes(d.lost === 0)],
        ['duplicates (more than one webhook)', d.duplicates, yes(d.duplicates === 0)],
        ['not OK', d.notOk, yes(d.notOk === 0)],
        ['webhooks for unknown ids', d.unknownDeliveries, yes(d.unknownDeliveries === 0)],
        [`${d.requestWorkflowType ?? 'request'} workflows completed`, d.requestWorkflows.completed, '-'],
        ['accepted requests whose workflow still runs', d.acceptedStillRunning, yes(d.acceptedStillRunning === 0)],
        [
          'other running workflows',
          Object.entries(d.otherRunningWorkflows)
            .map(([type, n]) => `${type} x${n}`)
            .join(', ') || 'none',
          '-',
        ],
        [
          'one request history (tracked, p50 / max)',
          `${d.trackedRequestHistory.events?.p50} / ${d.trackedRequestHistory.events?.max} events, ${d.trackedRequestHistory.bytes?.p50} / ${d.trackedRequestHistory.bytes?.max} bytes`,
          '-',
        ],
      ],
    ),
    '',
    `Histories over ${HISTORY_LENGTH_LIMIT} events or ${HISTORY_BYTES_LIMIT} bytes: ${r.histories.workflowsOverBounds} ` +
      `run(s) in visibility, ${r.histories.runningOverBounds} running workflow(s) described now; largest:`,
    '',
    table(
      ['workflow', 'type', 'status', 'events', 'bytes', 'largest event payload bytes', 'claim-checked payloads'],
      r.histories.largest.map((h) => [
        h.workflowId.slice(0, 48),
        h.type,
        h.status,
        h.events,
        h.bytes,
        h.largestEventPayloadBytes,
        h.claimCheckedPayloads,
      ]),
    ),
    '',
    'Tracked queue positions (reference: rank - finished ahead; see the JSON for the tolerance and every poll)',
    '',
    table(
      [
        'rank',
        'submit pos',
        'first polled',
        'only down',
        'last queued',
        'then',
        'after ms',
        'max over',
        'max under',
        'outside tol.',
        'false 0s',
        'polls',
        'poll ms p50/max',
      ],
      r.positions.tracked.map((p) => [
        p.rank,
        p.submitPosition,
        p.firstPolledPosition,
        p.onlyMovedDown ? 'yes' : `NO (${p.rises}x, up to ${p.largestRise})`,
        p.lastQueuedPosition,
        p.firstLaterStatus,
        p.lastQueuedToStartedMs,
        p.maxOverReference,
        p.maxUnderReference,
        `${p.samplesOutsideTolerance}/${p.queuedSamples}`,
        p.zerosFarFromFront,
        p.polls,
        p.pollMs ? `${p.pollMs.p50}/${p.pollMs.max}` : undefined,
      ]),
    ),
    ...serverOpsLines(r.serverOpsPerRequest),
    '',
    'Memory and CPU per process (RSS MiB; slope = least squares, MiB per 10,000 requests accepted / delivered;',
    `after warm-up = the same without the first ${WARMUP_SHARE * 100} % of the phase's requests)`,
    '',
    table(
      ['process / phase', 'start', 'peak', 'end', 'slope /10k', 'after warm-up', 'CPU s', 'CPU ms/req'],
      (['build', 'drain'] as const).flatMap((phase) =>
        Object.entries(r.resources[phase]).map(([name, f]) => [
          `${name} ${phase}`,
          f.startMiB,
          f.peakMiB,
          f.endMiB,
          f.slopeMiBPer10k,
          f.slopeAfterWarmupMiBPer10k,
          f.cpuSeconds,
          f.cpuMsPerRequest,
        ]),
      ),
    ),
  ];
  if ((r.machine.loadAverageAtStart[0] ?? 0) > r.machine.cpus * 0.5) {
    lines.push('', `NOTE: the machine was busy at start (load ${r.machine.loadAverageAtStart[0]}): figures are noisy.`);
  }
  return lines.join('\n');
}
