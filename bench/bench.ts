/**
 * `npm run bench`: our queue against raw Temporal on the same dev server, in one run.
 *
 * Starts its own stack on free ports — a Temporal dev server with a throwaway SQLite database, our
 * worker and API as separate processes (as deployed), a baseline worker process, and a loopback
 * webhook receiver in this process — then, per concurrency level, runs the baseline and ours back to
 * back in a closed loop (each of `c` clients submits, waits for its webhook, submits again).
 * Prints a report and writes the figures to `bench-results/` as JSON. `--help` lists the options.
 */
import { randomUUID, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { TEMPORAL_SERVER_VERSION } from '../src/cluster/temporal-server';
import { startThrowawayTemporalCluster } from '../src/cluster/temporal-cluster';
import { loadConfig } from '../src/config';
import { ensureTemporalCli } from '../src/temporal/cli';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { DEFAULT_SQLITE_PRAGMAS, TUNED_DYNAMIC_CONFIG, startDevServer } from '../src/temporal/dev-server';
import { BACKLOG_USAGE, runBacklog } from './backlog';
import type { baselineRequest } from './baseline/workflows';
import { historyCost, requestTimeline, type HistoryCost, type RequestTimeline } from './history';
import {
  apiUrlOf,
  printLastOutput,
  projectRoot,
  rssBytes,
  spawnApi,
  spawnService,
  spawnWorker,
  cpuTimeMs,
  serviceEnv,
  writeWorkflowBundle,
  type ServiceProcess,
} from './processes';
import { jsonClient, type HttpClientKind, type JsonCall } from './http-client';
import { Progress } from './progress';
import { startRunScope } from './run-scope';
import { nowMs, WebhookReceiver } from './receiver';
import { opsPerRequest, readServerOps, type ServerOps } from './server-metrics';
import { leastSquaresSlope, mib, ratio, round, summarize, table, type Summary } from './stats';

const USAGE = `Usage: npm run bench -- [options]

  --concurrency 1,16,64   closed-loop clients per level (default 1,16,64)
  --requests N            measured requests per level and system (default 300)
  --duration S            measure each level for S seconds instead of a request count
  --warmup N              unmeasured requests before each level (default 2 x concurrency, at least 20)
  --rounds N              measure each level in N rounds that alternate the systems (ABBA: baseline, ours, ours,
                          baseline, ...), each round 1/N of the requests (at least 2 x concurrency) or of
                          --duration; a machine that speeds up or slows down during a level then favours
                          neither (default 4; 1 = each system's level in one go)
  --pollers N             concurrent status pollers (default 100)
  --poll-seconds S        how long the status pollers run (default 10)
  --poll-interval-ms MS   pause between one poller's requests (default 500, fal's client default; 0 = flat out)
  --model-concurrency N   the no-op model's runner slots (default 64; \`unlimited\`: 64 runs per runner); its
                          requests wait in its task queue; the baseline's model worker gets as many slots
  --queue Q               the no-op model's \`queue\`: task-queue (default) or admission-workflow (the exact
                          cluster-wide limit of one admission workflow per model)
  --sample N              requests per level whose Temporal history is read for the breakdown (default 100)
  --long N                memory run instead: N requests through our stack, worker RSS sampled
  --long-concurrency C    clients of the memory run (default 16)
  --out FILE              results file (default bench-results/bench-<time>.json)
  --db file|memory        dev server database: a SQLite file as \`npm start\` uses (default), or in memory
  --sqlite-pragma K=V     SQLite pragma of the database file (repeatable; replaces the default
                          journal_mode=wal, synchronous=normal; \`none\` = SQLite's own defaults)
  --dynamic-config K=V    dev server dynamic config value (repeatable) on top of the tuned defaults
                          (src/temporal/dev-server.ts TUNED_DYNAMIC_CONFIG), e.g. history.transferProcessorMaxPollRPS=20
  --temporal-address H:P  use this Temporal server instead of starting a dev server
  --cluster               start the cluster topology's Temporal server on PostgreSQL (npm run cluster's) and
                          measure against it; \`--scale-out\` (bench/scale-out.ts) measures 1 vs 2 runner processes
  --api-overhead          instead of all this, the API's HTTP layer alone against a bare Node HTTP server
                          (bench/api-overhead.ts: --requests, --paused-requests, --pause-ms, --rounds)
  --one-process           run our control worker, model runner and API in one process on one connection, as
                          \`npm start\` does (src/dev.ts against the bench's server); with TEMPORAL_EAGER_START=true
                          in the environment, submits start eagerly
  --http-client K         the HTTP client of the timed submits and status polls: undici (its \`request\`, the
                          default) or fetch (Node's global fetch, as @fal-ai/client uses; about 1 ms more per call)
  --only ours|baseline    measure one system only (no ratios); handy with --cpu-prof
  --cpu-prof DIR          write V8 CPU profiles of our worker and API to DIR (summarise them with
                          \`node --import tsx bench/profile-summary.ts DIR\`)
  --keep                  keep the temporary directory (database file, workflow bundles, models file)

Worker tuning comes from WORKER_MAX_CACHED_WORKFLOWS, WORKER_MAX_CONCURRENT_WORKFLOW_TASKS and
WORKER_MAX_CONCURRENT_ACTIVITIES (src/config.ts defaults), for ours and the baseline alike.

${BACKLOG_USAGE}`;

const MODEL_ID = 'bench/noop';
/** A no-op model that takes its time: requests that stay in flight while the status pollers run. */
const SLOW_MODEL_ID = 'bench/slow';
const API_KEY = 'bench:bench-secret';
// Generous: at a saturated level, end-to-end latency is queueing, not failure.
const WEBHOOK_WAIT_MS = 600_000;

/**
 * SQLite as the bench's dev server runs it (the same as `npm start` and the tests): the pragmas of
 * `--sqlite-pragma` (default: DEFAULT_SQLITE_PRAGMAS of src/temporal/dev-server.ts), one connection,
 * one history shard. `journalModeOnDisk` is read back from the database file after the run.
 */
function sqliteSettings(pragmas: Record<string, string>) {
  return {
    pragmas: Object.keys(pragmas).length > 0 ? pragmas : "none (SQLite's defaults: rollback journal, fsync per commit)",
    maxOpenConns: 1,
    numHistoryShards: 1,
  };
}

interface Tuning {
  maxCachedWorkflows: number;
  maxConcurrentWorkflowTasks: number;
  maxConcurrentActivities: number;
  modelConcurrency: number | 'unlimited';
  /** Where the no-op model's requests wait (the models file's `queue`). */
  queue: 'task-queue' | 'admission-workflow';
  runnerConcurrency: number;
}

interface Options {
  concurrency: number[];
  requests: number;
  durationS?: number;
  warmup?: number;
  rounds: number;
  pollers: number;
  pollSeconds: number;
  pollIntervalMs: number;
  modelConcurrency: number | 'unlimited';
  /** Where the no-op model's requests wait (the models file's `queue`). */
  queue: 'task-queue' | 'admission-workflow';
  sample: number;
  long?: number;
  longConcurrency: number;
  out?: string;
  keep: boolean;
  db: 'file' | 'memory';
  sqlitePragmas: Record<string, string>;
  dynamicConfig: Record<string, string | number | boolean>;
  temporalAddress?: string;
  /** Run against the cluster topology (PostgreSQL + Temporal server, src/cluster) started by the bench. */
  cluster: boolean;
  /** Ours as `npm start` runs it: workers and API in one process, sharing the workers' connection. */
  oneProcess: boolean;
  cpuProf?: string;
  only?: 'ours' | 'baseline';
  httpClient: HttpClientKind;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      concurrency: { type: 'string', default: '1,16,64' },
      requests: { type: 'string', default: '300' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string', default: '4' },
      pollers: { type: 'string', default: '100' },
      'poll-seconds': { type: 'string', default: '10' },
      'poll-interval-ms': { type: 'string', default: '500' },
      'model-concurrency': { type: 'string', default: '64' },
      queue: { type: 'string', default: 'task-queue' },
      sample: { type: 'string', default: '100' },
      long: { type: 'string' },
      'long-concurrency': { type: 'string', default: '16' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      db: { type: 'string', default: 'file' },
      'dynamic-config': { type: 'string', multiple: true, default: [] },
      'sqlite-pragma': { type: 'string', multiple: true },
      'temporal-address': { type: 'string' },
      cluster: { type: 'boolean', default: false },
      'one-process': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      only: { type: 'string' },
      'http-client': { type: 'string', default: 'undici' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, min = 1): number | undefined => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${raw}`);
    return n;
  };
  return {
    concurrency: values.concurrency.split(',').map((c) => int('concurrency', c.trim())!),
    requests: int('requests', values.requests)!,
    durationS: int('duration', values.duration),
    warmup: int('warmup', values.warmup, 0),
    rounds: int('rounds', values.rounds)!,
    pollers: int('pollers', values.pollers)!,
    pollSeconds: int('poll-seconds', values['poll-seconds'])!,
    pollIntervalMs: int('poll-interval-ms', values['poll-interval-ms'], 0)!,
    modelConcurrency:
      values['model-concurrency'] === 'unlimited'
        ? 'unlimited'
        : int('model-concurrency', values['model-concurrency'])!,
    queue:
      values.queue === 'task-queue' || values.queue === 'admission-workflow'
        ? values.queue
        : fail(`--queue must be task-queue or admission-workflow, got ${values.queue}`),
    sample: int('sample', values.sample, 0)!,
    long: int('long', values.long),
    longConcurrency: int('long-concurrency', values['long-concurrency'])!,
    out: values.out,
    keep: values.keep,
    db:
      values.db === 'memory'
        ? 'memory'
        : values.db === 'file'
          ? 'file'
          : fail(`--db must be file or memory, got ${values.db}`),
    sqlitePragmas: values['sqlite-pragma']
      ? Object.fromEntries(
          values['sqlite-pragma']
            .filter((kv) => kv !== 'none')
            .map((kv) => {
              const eq = kv.indexOf('=');
              if (eq < 1) fail(`--sqlite-pragma takes PRAGMA=VALUE or none, got ${kv}`);
              return [kv.slice(0, eq), kv.slice(eq + 1)];
            }),
        )
      : { ...DEFAULT_SQLITE_PRAGMAS },
    dynamicConfig: Object.fromEntries(
      values['dynamic-config'].map((kv) => {
        const eq = kv.indexOf('=');
        if (eq < 1) fail(`--dynamic-config takes KEY=VALUE, got ${kv}`);
        const raw = kv.slice(eq + 1);
        // Values are JSON to the CLI; bare words are strings.
        let value: string | number | boolean;
        try {
          value = JSON.parse(raw) as string | number | boolean;
        } catch {
          value = raw;
        }
        return [kv.slice(0, eq), value];
      }),
    ),
    temporalAddress: values['temporal-address'],
    cluster: values.cluster,
    oneProcess: values['one-process'],
    cpuProf: values['cpu-prof'] && resolve(values['cpu-prof']),
    only:
      values.only === undefined || values.only === 'ours' || values.only === 'baseline'
        ? values.only
        : fail(`--only must be ours or baseline, got ${values.only}`),
    httpClient:
      values['http-client'] === 'undici' || values['http-client'] === 'fetch'
        ? values['http-client']
        : fail(`--http-client must be undici or fetch, got ${values['http-client']}`),
  };
}

function fail(message: string): never {
  throw new Error(message);
}

/** One finished request of a closed loop, all times in epoch ms. */
interface Sample {
  id: string;
  submittedAt: number;
  acknowledgedAt: number;
  deliveredAt: number;
}

/** A system under test: how to submit one request, and which activity makes its result exist. */
interface System {
  name: 'baseline' | 'ours';
  submit(): Promise<string>;
  inferenceActivity: string;
  webhookActivity: string;
  /** Requests submitted so far, warm-up included. */
  submitted: number;
}

interface LevelResult {
  requests: number;
  errors: number;
  throughputRps: number;
  /** HTTP submit (ours) or `workflow.start` (baseline). */
  submitMs?: Summary;
  endToEndMs?: Summary;
  /** Submit (client clock) to the inference's completion in the history (the result exists), sampled requests. */
  submitToResultMs?: Summary;
  webhookAfterResultMs?: Summary;
  breakdownP50Ms: Record<string, number | undefined>;
  historyEventsPerRequest?: number;
  /** Share of the sampled requests whose webhook's first attempt was a local activity (0 to 1). */
  firstAttemptLocalShare?: number;
  workflowTypes: string[];
  /** CPU time each process spent per measured request (ms), from /proc: robust to a busy machine. */
  cpuMsPerRequest: Record<string, number | undefined>;
  /** The server's database calls per measured request, by store and operation (a dev server the bench started). */
  serverOpsPerRequest?: ServerOps;
  /** Throughput of each round (req/s), in the order they ran. */
  roundThroughputRps: number[];
}

/** Requests per second over a span of milliseconds (0 for an empty span). */
function rate(requests: number, spanMs: number): number {
  return spanMs > 0 ? round(requests / (spanMs / 1000)) : 0;
}

/** One round of a level for one system: its requests, and what the processes and the server spent meanwhile. */
interface Round {
  samples: Sample[];
  errors: string[];
  /** From the first submit to the last webhook. */
  spanMs: number;
  cpuMs: Record<string, number | undefined>;
  serverOps?: ServerOps;
}

/** The result of a system that was not measured (`--only`). */
function emptyLevel(): LevelResult {
  return {
    requests: 0,
    errors: 0,
    throughputRps: 0,
    breakdownP50Ms: {},
    workflowTypes: [],
    cpuMsPerRequest: {},
    roundThroughputRps: [],
  };
}

/** Runs `concurrency` clients, each submitting and waiting for its webhook, until `limit` is reached. */
async function closedLoop(
  system: System,
  receiver: WebhookReceiver,
  concurrency: number,
  limit: { requests?: number; until?: number },
  onDone: () => void,
): Promise<{ samples: Sample[]; errors: string[] }> {
  const samples: Sample[] = [];
  const errors: string[] = [];
  let issued = 0;
  const more = () =>
    (limit.requests === undefined || issued < limit.requests) &&
    (limit.until === undefined || Date.now() < limit.until);
  const client = async () => {
    while (more()) {
      issued++;
      const submittedAt = nowMs();
      try {
        const id = await system.submit();
        const acknowledgedAt = nowMs();
        const delivery = await withTimeout(receiver.waitFor(id), WEBHOOK_WAIT_MS, `no webhook for ${id}`);
        samples.push({ id, submittedAt, acknowledgedAt, deliveredAt: delivery.at });
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
        if (errors.length > 20) throw new Error(`${system.name}: too many errors, last: ${errors.at(-1)}`);
      }
      onDone();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  return { samples, errors };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the histories of up to `count` samples (evenly spread) and times their phases. */
async function timelines(client: Client, system: System, samples: Sample[], count: number) {
  const step = Math.max(1, Math.floor(samples.length / Math.max(1, count)));
  const picked = samples.filter((_, i) => i % step === 0).slice(0, count);
  const out: { sample: Sample; timeline: RequestTimeline }[] = [];
  const queue = [...picked];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        out.push({
          sample: s,
          timeline: await requestTimeline(
            client,
            s.id,
            s.submittedAt,
            system.inferenceActivity,
            system.webhookActivity,
          ),
        });
      }
    }),
  );
  return out;
}

/** What a level measures with: the processes' CPU clocks and the server's counters. */
interface Meters {
  cpu: () => Record<string, number | undefined>;
  serverOps: () => Promise<ServerOps | undefined>;
}

/** Unmeasured requests before a system's first round of a level. */
async function warmUp(
  system: System,
  receiver: WebhookReceiver,
  concurrency: number,
  options: Options,
  progress: Progress,
): Promise<void> {
  const warmup = options.warmup ?? Math.max(20, concurrency * 2);
  if (warmup === 0) return;
  progress.start(`${system.name} c=${concurrency} warm-up`, warmup);
  await closedLoop(system, receiver, concurrency, { requests: warmup }, () => progress.tick());
  progress.finish();
}

/** One round of a level: 1/rounds of its requests (at least 2 x concurrency) or of its duration. */
async function measureRound(
  system: System,
  receiver: WebhookReceiver,
  concurrency: number,
  label: string,
  options: Options,
  progress: Progress,
  meters: Meters,
): Promise<Round> {
  const limit = options.durationS
    ? { until: Date.now() + (options.durationS * 1000) / options.rounds }
    : { requests: Math.max(Math.ceil(options.requests / options.rounds), 2 * concurrency) };
  progress.start(`${system.name} c=${concurrency}${label}`, limit.requests ?? 0);
  const opsBefore = await meters.serverOps();
  const cpuBefore = meters.cpu();
  const { samples, errors } = await closedLoop(system, receiver, concurrency, limit, () => progress.tick());
  const cpuAfter = meters.cpu();
  const opsAfter = await meters.serverOps();
  const first = Math.min(...samples.map((s) => s.submittedAt));
  const last = Math.max(...samples.map((s) => s.deliveredAt));
  const spanMs = samples.length > 0 ? last - first : 0;
  progress.finish(`${rate(samples.length, spanMs)} req/s${errors.length ? `, ${errors.length} errors` : ''}`);
  const delta = (after: number | undefined, before: number | undefined) =>
    after === undefined || before === undefined ? undefined : after - before;
  return {
    samples,
    errors,
    spanMs,
    cpuMs: Object.fromEntries(Object.entries(cpuAfter).map(([name, after]) => [name, delta(after, cpuBefore[name])])),
    // The round's totals (per one "request", nothing left out); the level divides their sum by its requests.
    serverOps: opsAfter && opsBefore ? opsPerRequest(opsBefore, opsAfter, 1, 0) : undefined,
  };
}

/** A system's result at a level, from all its rounds together. */
async function levelResult(
  system: System,
  client: Client,
  rounds: Round[],
  options: Options,
): Promise<{ result: LevelResult; samples: Sample[] }> {
  const samples = rounds.flatMap((r) => r.samples);
  const errors = rounds.flatMap((r) => r.errors);
  const spanMs = rounds.reduce((sum, r) => sum + r.spanMs, 0);
  const throughputRps = rate(samples.length, spanMs);
  const cpuMsPerRequest = Object.fromEntries(
    Object.keys(rounds[0]?.cpuMs ?? {}).map((name) => {
      const spent = rounds.map((r) => r.cpuMs[name]);
      const known = spent.filter((ms): ms is number => ms !== undefined);
      const total = known.reduce((sum, ms) => sum + ms, 0);
      return [name, known.length < spent.length || samples.length === 0 ? undefined : round(total / samples.length, 2)];
    }),
  );
  const serverOps = rounds.every((r) => r.serverOps)
    ? rounds.reduce<ServerOps>((sum, r) => {
        for (const [key, n] of Object.entries(r.serverOps!)) sum[key] = (sum[key] ?? 0) + n;
        return sum;
      }, {})
    : undefined;

  const read = options.sample > 0 ? await timelines(client, system, samples, options.sample) : [];
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a - b;
  const p50 = (values: (number | undefined)[]) => summarize(values.filter((v): v is number => v !== undefined))?.p50;
  const types = new Set(read.flatMap((r) => r.timeline.workflowTypes));
  return {
    samples,
    result: {
      requests: samples.length,
      errors: errors.length,
      throughputRps,
      submitMs: summarize(samples.map((s) => s.acknowledgedAt - s.submittedAt)),
      endToEndMs: summarize(samples.map((s) => s.deliveredAt - s.submittedAt)),
      submitToResultMs: summarize(
        read.filter((r) => r.timeline.resultAt !== undefined).map((r) => r.timeline.resultAt! - r.sample.submittedAt),
      ),
      webhookAfterResultMs: summarize(
        read.filter((r) => r.timeline.resultAt !== undefined).map((r) => r.sample.deliveredAt - r.timeline.resultAt!),
      ),
      breakdownP50Ms: {
        submitToWorkflowStarted: p50(read.map((r) => r.timeline.startedAfterSubmitMs)),
        startedToInferenceScheduled: p50(read.map((r) => r.timeline.scheduleMs)),
        firstTaskDispatch: p50(read.map((r) => r.timeline.firstTaskDispatchMs)),
        firstTaskWorker: p50(read.map((r) => r.timeline.firstTaskWorkerMs)),
        inferenceQueueWait: p50(read.map((r) => r.timeline.queueWaitMs)),
        inferenceRun: p50(read.map((r) => r.timeline.inferenceMs)),
        resultToWebhookScheduled: p50(read.map((r) => diff(r.timeline.webhookScheduledAt, r.timeline.resultAt))),
        webhookQueueWait: p50(read.map((r) => diff(r.timeline.webhookStartedAt, r.timeline.webhookScheduledAt))),
        webhookStartToReceived: p50(read.map((r) => diff(r.sample.deliveredAt, r.timeline.webhookStartedAt))),
      },
      historyEventsPerRequest: p50(read.map((r) => r.timeline.historyEvents)),
      firstAttemptLocalShare:
        read.length > 0 ? round(read.filter((r) => r.timeline.firstAttemptLocal).length / read.length, 2) : undefined,
      workflowTypes: [...types],
      cpuMsPerRequest,
      serverOpsPerRequest: serverOps && opsPerRequest({}, serverOps, samples.length),
      roundThroughputRps: rounds.map((r) => rate(r.samples.length, r.spanMs)),
    },
  };
}

/**
 * `pollers` clients each ask for the state of one request (poller i of `ids[i % ids.length]`), pause
 * `--poll-interval-ms`, and repeat for `--poll-seconds`. `poll` answers the state it saw (or the HTTP
 * status of a failure); latencies are reported overall and per state.
 */
async function measureStatus(
  label: string,
  poll: (id: string) => Promise<string>,
  ids: string[],
  options: Options,
  progress: Progress,
): Promise<StatusResult> {
  const latencies: number[] = [];
  const byState = new Map<string, number[]>();
  const until = Date.now() + options.pollSeconds * 1000;
  progress.start(`${label}, ${options.pollers} pollers`, 0);
  await Promise.all(
    Array.from({ length: options.pollers }, async (_, i) => {
      const id = ids[i % ids.length]!;
      // Spread the pollers' first requests over one interval, as independent clients would be.
      await sleep(Math.random() * options.pollIntervalMs);
      while (Date.now() < until) {
        const started = nowMs();
        const state = await poll(id).catch((err: unknown) => `error: ${(err as Error).message}`);
        const ms = nowMs() - started;
        latencies.push(ms);
        byState.set(state, [...(byState.get(state) ?? []), ms]);
        progress.tick();
        if (options.pollIntervalMs > 0) await sleep(options.pollIntervalMs);
      }
    }),
  );
  const rps = round(latencies.length / options.pollSeconds);
  progress.finish(`${rps} req/s`);
  return {
    pollers: options.pollers,
    intervalMs: options.pollIntervalMs,
    requests: latencies.length,
    rps,
    latencyMs: summarize(latencies),
    byState: Object.fromEntries([...byState].map(([state, values]) => [state, summarize(values)!])),
  };
}

type StatusPhase = Awaited<ReturnType<typeof statusPhase>>;

interface StatusResult {
  pollers: number;
  intervalMs: number;
  requests: number;
  rps: number;
  latencyMs?: Summary;
  byState: Record<string, Summary>;
}

/**
 * Status under `--pollers` concurrent pollers, through our endpoint and, for reference, as a raw
 * `describe()` of the same workflows from this process: first of requests still in flight (each
 * poller its own request of a slow model, half of them running and half waiting for a slot), then
 * of finished ones.
 */
async function statusPhase(
  apiUrl: string,
  client: Client,
  finishedIds: string[],
  options: Options,
  progress: Progress,
) {
  const auth = { authorization: `Key ${API_KEY}` };
  const submitSlow = async () => {
    const res = await fetch(`${apiUrl}/${SLOW_MODEL_ID}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"prompt":"poll me"}',
    });
    const body = (await res.json()) as { request_id?: string };
    if (!body.request_id) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
    return body.request_id;
  };
  const http = jsonClient(options.httpClient);
  const viaApi = (modelId: string) => async (id: string) => {
    const res = await http(`${apiUrl}/${modelId}/requests/${id}/status`, { headers: auth });
    const status = (res.body as { status?: string }).status;
    return res.status < 300 && status ? status : `HTTP ${res.status}`;
  };
  const raw = async (id: string) => (await client.workflow.getHandle(id).describe()).status.name;
  // The share of answers the API's view cache gave from memory (fal_queue_status_reads_total), per phase.
  const statusReads = async () => {
    const text = await (await fetch(`${apiUrl}/metrics`)).text();
    const count = (source: string) =>
      Number(new RegExp(`^fal_queue_status_reads_total\\{source="${source}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    return { cache: count('cache'), temporal: count('temporal') };
  };
  const withCacheShare = async (measure: () => Promise<StatusResult>) => {
    const before = await statusReads();
    const measured = await measure();
    const after = await statusReads();
    const cache = after.cache - before.cache;
    const total = cache + after.temporal - before.temporal;
    return { ...measured, answeredFromCache: total > 0 ? round(cache / total) : undefined };
  };
  // Finished requests first, before the slow ones exist: their load (running activities, background reads of the
  // API's cache) would otherwise weigh on this phase too.
  const finished = await withCacheShare(() =>
    measureStatus('status (finished)', viaApi(MODEL_ID), finishedIds, options, progress),
  );
  const finishedRawDescribe = await measureStatus('raw describe (finished)', raw, finishedIds, options, progress);
  const slowIds: string[] = [];
  for (let i = 0; i < options.pollers; i += 8) {
    slowIds.push(...(await Promise.all(Array.from({ length: Math.min(8, options.pollers - i) }, submitSlow))));
  }
  const result = {
    inFlight: await withCacheShare(() =>
      measureStatus('status (in flight)', viaApi(SLOW_MODEL_ID), slowIds, options, progress),
    ),
    inFlightRawDescribe: await measureStatus('raw describe (in flight)', raw, slowIds, options, progress),
    finished,
    finishedRawDescribe,
  };
  await Promise.all(
    slowIds.map((id) =>
      fetch(`${apiUrl}/${SLOW_MODEL_ID}/requests/${id}/cancel`, { method: 'PUT', headers: auth }).catch(
        () => undefined,
      ),
    ),
  );
  return result;
}

/** Samples RSS of the given processes every second; the last and peak values per process. */
function startRssSampler(processes: Record<string, ServiceProcess>) {
  const samples: { t: number; rss: Record<string, number | undefined> }[] = [];
  const take = () => {
    const rss = Object.fromEntries(Object.entries(processes).map(([name, p]) => [name, rssBytes(p.pid)]));
    samples.push({ t: Date.now(), rss });
    return rss;
  };
  const timer = setInterval(take, 1000);
  return {
    samples,
    take,
    stop() {
      clearInterval(timer);
    },
    peak(name: string) {
      return Math.max(...samples.map((s) => s.rss[name] ?? 0));
    },
  };
}

/** A short digest of the code that shapes a request, so results of different designs are not compared blindly. */
function designDigest(): string {
  const hash = createHash('sha256');
  const files = [
    'src/client/requests.ts',
    ...readdirSync(join(projectRoot, 'src/workflows'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/workflows/${f}`),
  ];
  for (const file of files.sort()) hash.update(file).update(readFileSync(join(projectRoot, file)));
  return hash.digest('hex').slice(0, 12);
}

/** SQLite's header says how the file is journaled: bytes 18 and 19 are 1 for rollback journal, 2 for WAL. */
function journalModeOnDisk(dbFile: string): string {
  const header = Buffer.alloc(20);
  const fd = openSync(dbFile, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return header[18] === 2 ? 'wal' : header[18] === 1 ? 'rollback journal (delete)' : `unknown (${header[18]})`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // The scale run (bench/backlog.ts) has its own stack and options.
  if (argv.some((a) => a === '--backlog' || a.startsWith('--backlog='))) return runBacklog(argv);
  const options = parseOptions(argv);
  const config = loadConfig(process.env);
  const tuning = {
    maxCachedWorkflows: config.worker.maxCachedWorkflows,
    maxConcurrentWorkflowTasks: config.worker.maxConcurrentWorkflowTasks,
    maxConcurrentActivities: config.worker.maxConcurrentActivities,
    modelConcurrency: options.modelConcurrency,
    queue: options.queue,
    runnerConcurrency: options.modelConcurrency === 'unlimited' ? 64 : options.modelConcurrency,
  };
  const progress = new Progress();
  const startedAt = new Date();
  const loadStart = loadavg();
  const { dir, cleanups, cleanup } = startRunScope('fal-queue-bench-', {
    keep: options.keep,
    log: (line) => progress.log(line),
  });
  let services: Record<string, ServiceProcess> = {};

  try {
    progress.log(`temporary directory ${dir}`);
    const dbFile =
      options.db === 'file' && !options.temporalAddress && !options.cluster ? join(dir, 'temporal.db') : undefined;
    progress.log(
      options.temporalAddress ? 'bundling workflows' : 'starting the Temporal dev server and bundling workflows',
    );
    const [temporal, ourBundle, baselineBundle] = await Promise.all([
      startTemporal(options, dbFile, progress),
      writeWorkflowBundle(dir, 'workflows.js'),
      writeWorkflowBundle(dir, 'baseline-workflows.js', { workflowsPath: require.resolve('./baseline/workflows') }),
    ]);
    cleanups.push(() => temporal.stop());
    const receiver = await WebhookReceiver.start();
    cleanups.push(() => receiver.close());
    const connection = await Connection.connect({ address: temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection });

    const stack = await startStacks(temporal, dir, ourBundle, baselineBundle, tuning, progress, options);
    services = stack.processes;
    cleanups.push(() => Promise.all(Object.values(stack.processes).map((p) => p.stop())));
    const sampler = startRssSampler(stack.processes);
    cleanups.push(async () => sampler.stop());
    const rssStart = sampler.take();
    const cpu = () => ({
      ...Object.fromEntries(Object.entries(stack.processes).map(([name, p]) => [name, cpuTimeMs(p.pid)])),
      temporal: temporal.pid === undefined ? undefined : cpuTimeMs(temporal.pid),
      bench: (() => {
        const usage = process.cpuUsage();
        return (usage.user + usage.system) / 1000;
      })(),
    });
    const meters: Meters = { cpu, serverOps: () => readServerOps(temporal.metricsUrl) };

    const http: JsonCall = jsonClient(options.httpClient);
    const ours: System = {
      name: 'ours',
      inferenceActivity: 'runInference',
      webhookActivity: 'deliverWebhook',
      submitted: 0,
      async submit() {
        const res = await http(`${stack.apiUrl}/${MODEL_ID}?fal_webhook=${encodeURIComponent(receiver.url)}`, {
          method: 'POST',
          headers: { authorization: `Key ${API_KEY}`, 'content-type': 'application/json' },
          body: '{"prompt":"bench"}',
        });
        const body = res.body as { request_id?: string };
        if (res.status === 200) ours.submitted++;
        if (res.status !== 200 || !body.request_id)
          throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
        return body.request_id;
      },
    };
    const baseline: System = {
      name: 'baseline',
      inferenceActivity: 'noopInference',
      webhookActivity: 'postWebhook',
      submitted: 0,
      async submit() {
        const id = randomUUID();
        await client.workflow.start<typeof baselineRequest>('baselineRequest', {
          workflowId: id,
          taskQueue: stack.baselineTaskQueue,
          args: [
            {
              id,
              webhookUrl: receiver.url,
              modelTaskQueue: `${stack.baselineTaskQueue}:model:noop`,
              input: { prompt: 'bench' },
            },
          ],
        });
        baseline.submitted++;
        return id;
      },
    };

    const results: Record<string, unknown> = {
      version: 1,
      startedAt: startedAt.toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        memoryMiB: mib(totalmem()),
        loadAverageAtStart: loadStart.map((l) => round(l)),
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
      },
      options,
      layout: `separate processes: dev server, ${
        options.oneProcess
          ? `ours (src/dev.ts: workers and API on one connection${config.temporal.eagerStart ? ', eager start' : ''})`
          : 'our worker (src/worker.ts), our API (src/server.ts)'
      }, baseline worker; clients (HTTP: ${options.httpClient}) and webhook receiver in the bench process`,
      temporal: {
        address:
          options.temporalAddress ??
          (options.cluster ? 'cluster topology started by the bench' : 'dev server started by the bench'),
        cli: temporal.cliVersion,
        database: options.temporalAddress ? 'external' : options.cluster ? 'PostgreSQL' : (dbFile ?? 'in memory'),
        sqlite: options.temporalAddress || !dbFile ? undefined : sqliteSettings(options.sqlitePragmas),
        // What the server ran with: the launcher's tuned defaults, then --dynamic-config (same for both stacks).
        dynamicConfig: options.temporalAddress
          ? options.dynamicConfig
          : { ...TUNED_DYNAMIC_CONFIG, ...options.dynamicConfig },
      },
      tuning,
      design: { digest: designDigest() },
    };

    if (options.long) {
      results.long = await longRun(ours, receiver, options, stack.workerPid, progress);
    } else {
      const levels: Record<string, unknown>[] = [];
      let lastOurs: Sample[] = [];
      for (const concurrency of options.concurrency) {
        const skipped = { result: emptyLevel(), samples: [] };
        const systems = [baseline, ours].filter((system) => options.only === undefined || options.only === system.name);
        const rounds = new Map<System, Round[]>(systems.map((system) => [system, []]));
        for (const system of systems) await warmUp(system, receiver, concurrency, options, progress);
        for (let r = 0; r < options.rounds; r++) {
          // ABBA: each system goes first in half the rounds, so a steady drift of the machine favours neither.
          const order = r % 2 === 0 ? systems : [...systems].reverse();
          const label = options.rounds > 1 ? `, round ${r + 1}/${options.rounds}` : '';
          for (const system of order) {
            rounds
              .get(system)!
              .push(await measureRound(system, receiver, concurrency, label, options, progress, meters));
          }
        }
        const measured = async (system: System) =>
          rounds.has(system) ? levelResult(system, client, rounds.get(system)!, options) : skipped;
        const base = await measured(baseline);
        const our = await measured(ours);
        lastOurs = our.samples;
        levels.push({
          concurrency,
          baseline: base.result,
          ours: our.result,
          ratios: {
            throughput: ratio(our.result.throughputRps, base.result.throughputRps),
            // Ours over the baseline in each round: how much of the level's ratio is the machine's noise.
            throughputByRound: our.result.roundThroughputRps.map((rps, i) =>
              ratio(rps, base.result.roundThroughputRps[i]),
            ),
            submitP50: ratio(our.result.submitMs?.p50, base.result.submitMs?.p50),
            submitP99: ratio(our.result.submitMs?.p99, base.result.submitMs?.p99),
            endToEndP50: ratio(our.result.endToEndMs?.p50, base.result.endToEndMs?.p50),
          },
        });
      }
      results.levels = levels;
      // Helper workflows (queues, children) included: what one request makes the server store.
      (results.design as Record<string, unknown>).historyCost = {
        baseline: await historyCost(client, stack.baselineTaskQueue, baseline.submitted),
        ours: await historyCost(client, stack.taskQueue, ours.submitted),
      };
      const ids = lastOurs.map((s) => s.id);
      if (ids.length > 0) {
        const status = await statusPhase(stack.apiUrl, client, ids, options, progress);
        results.status = status;
        results.targets = evaluateTargets(levels, status);
      }
    }
    const rssEnd = sampler.take();
    results.rssMiB = Object.fromEntries(
      Object.keys(stack.processes).map((name) => [
        name,
        { start: mib(rssStart[name]), end: mib(rssEnd[name]), peak: mib(sampler.peak(name)) },
      ]),
    );
    if (dbFile) (results.temporal as Record<string, unknown>).journalModeOnDisk = journalModeOnDisk(dbFile);
    (results.machine as Record<string, unknown>).loadAverageAtEnd = loadavg().map((l) => round(l));
    results.finishedAt = new Date().toISOString();

    const out =
      options.out ?? join(projectRoot, 'bench-results', `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(report(results));
    console.log(`\nresults: ${relative(process.cwd(), out)}`);
  } catch (err) {
    printLastOutput(services);
    throw err;
  } finally {
    await cleanup();
  }
}

/** The dev server the bench owns, or a handle on the server given with --temporal-address. */
async function startTemporal(
  options: Options,
  dbFile: string | undefined,
  progress: Progress,
): Promise<{ address: string; cliVersion?: string; pid?: number; metricsUrl?: string; stop(): Promise<void> }> {
  if (options.temporalAddress) return { address: options.temporalAddress, stop: async () => undefined };
  if (options.cluster) {
    // PostgreSQL must be able to enter the directory when we run as root (it runs as the `postgres` user).
    const dir = mkdtempSync(join(tmpdir(), 'fal-queue-bench-cluster-'));
    chmodSync(dir, 0o755);
    const cluster = await startThrowawayTemporalCluster({
      projectRoot,
      dataDir: dir,
      log: (line) => progress.log(line),
    });
    return {
      address: cluster.address,
      cliVersion: `Temporal server ${TEMPORAL_SERVER_VERSION} on PostgreSQL (4 shards)`,
      pid: cluster.temporal.pid,
      stop: async () => {
        await cluster.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const cliPath = await ensureTemporalCli({ projectRoot, log: (line) => progress.log(line) });
  const cliVersion = spawnSync(cliPath, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const server = await startDevServer({
    searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
    cliPath,
    dbFile,
    sqlitePragmas: options.sqlitePragmas,
    port: 0,
    uiPort: false,
    metricsPort: 0,
    dynamicConfig: options.dynamicConfig,
  });
  return {
    address: server.address,
    cliVersion,
    pid: server.pid,
    metricsUrl: server.metricsUrl,
    stop: () => server.stop(),
  };
}

/** Our worker and API, and the baseline worker, each in its own process against `temporal`. */
async function startStacks(
  temporal: { address: string },
  dir: string,
  ourBundle: string,
  baselineBundle: string,
  tuning: Tuning,
  progress: Progress,
  { cpuProf, pollers, pollSeconds, oneProcess }: Pick<Options, 'cpuProf' | 'pollers' | 'pollSeconds' | 'oneProcess'>,
) {
  const modelsFile = join(dir, 'models.json');
  const model = {
    id: MODEL_ID,
    backend: { kind: 'builtin', name: 'noop' },
    queue: tuning.queue,
    concurrency: tuning.modelConcurrency,
    runnerConcurrency: tuning.runnerConcurrency,
  };
  const slow = {
    id: SLOW_MODEL_ID,
    backend: { kind: 'builtin', name: 'noop', options: { delayMs: (2 * pollSeconds + 60) * 1000 } },
    // Half the pollers' requests run, the other half wait for a slot.
    concurrency: Math.max(1, Math.floor(pollers / 2)),
    timeoutSeconds: 2 * pollSeconds + 120,
  };
  writeFileSync(modelsFile, JSON.stringify({ models: [{ ...model, timeoutSeconds: 60 }, slow] }));
  const taskQueue = `bench-${randomUUID()}`;
  const baselineTaskQueue = `baseline-${randomUUID()}`;
  const env = serviceEnv({
    temporalAddress: temporal.address,
    taskQueue,
    dataDir: dir,
    modelsFile,
    workflowBundlePath: ourBundle,
    apiKeys: API_KEY,
    webhookSchedule: '0s,1s,5s',
    webhookTimeoutMs: 10_000,
    tuning,
  });
  progress.log(
    oneProcess
      ? 'starting ours (one process) and the baseline worker'
      : 'starting our worker and API, and the baseline worker',
  );
  // Profiles are written when a process exits normally, which the bench's SIGTERM at the end gives.
  const profile = (name: string): string[] =>
    cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  // `npm start`'s entry point, against the bench's server (TEMPORAL_ADDRESS set: it starts no dev server of its own).
  const ourProcesses: Record<string, ServiceProcess> = oneProcess
    ? { ours: spawnService('ours', 'src/dev.ts', { ...env, PORT: '0' }, 'queue API listening', profile('ours')) }
    : { worker: spawnWorker(env, profile('worker')), api: spawnApi({ ...env, PORT: '0' }, profile('api')) };
  const api = ourProcesses.ours ?? ourProcesses.api!;
  const processes: Record<string, ServiceProcess> = {
    ...ourProcesses,
    baselineWorker: spawnService(
      'baseline-worker',
      'bench/baseline/worker.ts',
      {
        ...env,
        TEMPORAL_TASK_QUEUE: baselineTaskQueue,
        WORKFLOW_BUNDLE_PATH: baselineBundle,
        BASELINE_MODEL_CONCURRENCY: String(tuning.runnerConcurrency),
      },
      'workers polling',
    ),
  };
  await Promise.all(Object.values(processes).map((p) => p.ready));
  const workerPid = (ourProcesses.ours ?? ourProcesses.worker!).pid;
  return { processes, apiUrl: apiUrlOf(await api.ready), workerPid, taskQueue, baselineTaskQueue };
}

/**
 * The memory run: `--long` requests at `--long-concurrency`, sampling the worker's RSS every second
 * with the number of requests done. The first 20 % of requests are warm-up (JIT, caches, heap
 * sizing). RSS is a GC sawtooth, so single samples mislead: growth compares the mean RSS of the
 * first and last quarter of the post-warm-up samples, and the slope (least squares, MiB per 1,000
 * requests) shows whether it keeps climbing.
 */
async function longRun(
  ours: System,
  receiver: WebhookReceiver,
  options: Options,
  workerPid: number,
  progress: Progress,
) {
  const total = options.long!;
  const warmup = Math.max(1, Math.round(total * 0.2));
  let done = 0;
  const points: { t: number; done: number; rss: number }[] = [];
  const started = Date.now();
  const timer = setInterval(() => {
    const rss = rssBytes(workerPid);
    if (rss !== undefined) points.push({ t: Date.now() - started, done, rss });
  }, 1000);
  progress.start(`memory run c=${options.longConcurrency}`, total);
  try {
    await closedLoop(ours, receiver, options.longConcurrency, { requests: total }, () => {
      done++;
      progress.tick(1, `worker ${mib(points.at(-1)?.rss) ?? '?'} MiB`);
    });
  } finally {
    clearInterval(timer);
  }
  progress.finish();
  const seconds = (Date.now() - started) / 1000;
  const after = points.filter((p) => p.done >= warmup);
  const quarter = Math.max(1, Math.floor(after.length / 4));
  const mean = (ps: typeof after) => ps.reduce((a, p) => a + p.rss, 0) / Math.max(1, ps.length);
  const first = mean(after.slice(0, quarter));
  const last = mean(after.slice(-quarter));
  const growth = after.length >= 4 ? round(((last - first) / first) * 100, 1) : undefined;
  return {
    requests: total,
    concurrency: options.longConcurrency,
    warmupRequests: warmup,
    seconds: round(seconds, 1),
    throughputRps: round(total / seconds),
    workerRssMiB: {
      start: mib(points[0]?.rss),
      afterWarmupMean: mib(first),
      endMean: mib(last),
      max: mib(Math.max(...points.map((p) => p.rss))),
    },
    workerRssGrowthPercent: growth,
    slopeMiBPer1000Requests: slope(after),
    target: {
      name: 'worker RSS growth after warm-up',
      target: '<= 10 %',
      value: growth,
      met: growth !== undefined && growth <= 10,
    },
    series: points
      .filter((_, i) => i % 5 === 0)
      .map((p) => ({ t: round(p.t / 1000, 0), done: p.done, workerMiB: mib(p.rss) })),
  };
}

/** Least-squares slope of RSS against requests done, in MiB per 1,000 requests. */
function slope(points: { done: number; rss: number }[]): number | undefined {
  const perRequest = leastSquaresSlope(points.map((p) => ({ x: p.done, y: p.rss })));
  return perRequest === undefined ? undefined : round((perRequest * 1000) / 1024 / 1024, 2);
}

interface Target {
  name: string;
  target: string;
  value: number | undefined;
  met: boolean;
  note: string;
}

/**
 * Issue 15's targets: the ratios at their worst level (they must hold at every one), latencies at the lowest
 * concurrency (no queueing); the status target is issue 5's.
 */
function evaluateTargets(levels: Record<string, unknown>[], statusPhase: StatusPhase): Target[] {
  const status = statusPhase.inFlight;
  type Level = { concurrency: number; baseline: LevelResult; ours: LevelResult };
  const ls = levels as unknown as Level[];
  const lowest = ls[0]!;
  const each = (f: (l: Level) => number | undefined) => ls.map((l) => ({ c: l.concurrency, v: f(l) }));
  const throughput = each((l) => ratio(l.ours.throughputRps, l.baseline.throughputRps));
  const submit = each((l) => ratio(l.ours.submitMs?.p50, l.baseline.submitMs?.p50));
  const listed = (xs: { c: number; v: number | undefined }[]) => xs.map((x) => `c=${x.c}: ${x.v ?? '-'}`).join(', ');
  const worstThroughput = Math.min(...throughput.map((x) => x.v ?? 0));
  const worstSubmit = Math.max(...submit.map((x) => x.v ?? Infinity));
  const resultP50 = lowest.ours.submitToResultMs?.p50;
  const webhookP50 = lowest.ours.webhookAfterResultMs?.p50;
  const statusP50 = status.latencyMs?.p50;
  const finishedP50 = statusPhase.finished.latencyMs?.p50;
  return [
    {
      name: 'e2e throughput vs baseline',
      target: '>= 0.9',
      value: worstThroughput,
      met: worstThroughput >= 0.9,
      note: `worst level; ${listed(throughput)}`,
    },
    {
      name: 'submit p50 vs raw workflow.start p50',
      target: '<= 1.5',
      value: worstSubmit,
      met: worstSubmit <= 1.5,
      note: `worst level; ${listed(submit)}`,
    },
    {
      name: 'submit to result p50',
      target: '<= 30 ms',
      value: resultP50,
      met: (resultP50 ?? Infinity) <= 30,
      note: `at c=${lowest.concurrency}; raw Temporal ${lowest.baseline.submitToResultMs?.p50 ?? '-'} ms`,
    },
    {
      name: 'webhook p50 after the result',
      target: '<= 15 ms',
      value: webhookP50,
      met: (webhookP50 ?? Infinity) <= 15,
      note: `at c=${lowest.concurrency}; raw Temporal ${lowest.baseline.webhookAfterResultMs?.p50 ?? '-'} ms`,
    },
    {
      name: `status p50, ${status.pollers} pollers`,
      target: '<= 5 ms',
      value: statusP50,
      met: (statusP50 ?? Infinity) <= 5,
      note: `requests in flight, ${status.rps} req/s, every ${status.intervalMs} ms per poller; finished requests: ${finishedP50} ms`,
    },
  ];
}

/** The human-readable report. */
function report(r: Record<string, unknown>): string {
  const lines: string[] = [];
  const machine = r.machine as Record<string, unknown>;
  lines.push(
    '',
    `fal-queue-temporal benchmark — ${String(r.startedAt)}`,
    `machine: ${String(machine.cpus)} cores (${String(machine.cpuModel)}), load average ${JSON.stringify(machine.loadAverageAtStart)} at start, ${JSON.stringify(machine.loadAverageAtEnd)} at end`,
    `temporal: ${String((r.temporal as Record<string, unknown>).cli)}; SQLite journal on disk: ${String((r.temporal as Record<string, unknown>).journalModeOnDisk)}`,
    `tuning: ${JSON.stringify(r.tuning)}; design digest ${String((r.design as Record<string, unknown>).digest)}`,
    `layout: ${String(r.layout)}`,
  );
  if (r.levels) {
    type Level = {
      concurrency: number;
      baseline: LevelResult;
      ours: LevelResult;
      ratios: Record<string, number | undefined> & { throughputByRound?: (number | undefined)[] };
    };
    const levels = r.levels as Level[];
    const pp = (s: Summary | undefined) => (s ? `${s.p50} / ${s.p99}` : undefined);
    lines.push('', 'Throughput and latency (ms, p50 / p99); baseline = raw Temporal client, same server', '');
    lines.push(
      table(
        [
          'c',
          'base req/s',
          'ours req/s',
          'ratio',
          'by round',
          'start (base)',
          'submit (ours)',
          'ratio p50',
          'e2e (base)',
          'e2e (ours)',
        ],
        levels.map((l) => [
          l.concurrency,
          l.baseline.throughputRps,
          l.ours.throughputRps,
          l.ratios.throughput,
          l.ratios.throughputByRound?.join(' '),
          pp(l.baseline.submitMs),
          pp(l.ours.submitMs),
          l.ratios.submitP50,
          pp(l.baseline.endToEndMs),
          pp(l.ours.endToEndMs),
        ]),
      ),
    );
    lines.push('', 'Where the time goes (p50 ms, from Temporal histories of sampled requests)', '');
    const measured = levels[0]!.ours.requests > 0 ? levels[0]!.ours : levels[0]!.baseline;
    const keys = Object.keys(measured.breakdownP50Ms);
    lines.push(
      table(
        ['c / system', 'webhook after result p50/p99', ...keys, 'local first attempts', 'history events', 'workflows'],
        levels.flatMap((l) =>
          (['baseline', 'ours'] as const).map((k) => [
            `${l.concurrency} ${k}`,
            pp(l[k].webhookAfterResultMs),
            ...keys.map((key) => l[k].breakdownP50Ms[key] && round(l[k].breakdownP50Ms[key]!, 1)),
            l[k].firstAttemptLocalShare === undefined
              ? undefined
              : `${Math.round(l[k].firstAttemptLocalShare! * 100)} %`,
            l[k].historyEventsPerRequest,
            l[k].workflowTypes.join('+'),
          ]),
        ),
      ),
    );
    const cost = (r.design as { historyCost?: Record<string, HistoryCost> }).historyCost;
    if (cost) {
      lines.push('', 'What one request makes Temporal store (all workflows on the system’s task queue)', '');
      lines.push(
        table(
          ['system', 'workflow type', 'executions / request', 'events / request', 'bytes / request'],
          Object.entries(cost).flatMap(([system, c]) => [
            ...Object.entries(c.byType).map(([type, t]) => [
              system,
              type,
              t.executionsPerRequest,
              t.eventsPerRequest,
              t.bytesPerRequest,
            ]),
            [system, 'total', undefined, c.eventsPerRequest, undefined],
          ]),
        ),
      );
    }
    const opKeys = [
      ...new Set(
        levels.flatMap((l) =>
          (['baseline', 'ours'] as const).flatMap((k) => Object.keys(l[k].serverOpsPerRequest ?? {})),
        ),
      ),
    ].sort();
    if (opKeys.length > 0) {
      lines.push(
        '',
        'Temporal server: database calls per request, by store and operation (the server’s own metrics)',
        '',
      );
      lines.push(
        table(
          ['store operation', ...levels.flatMap((l) => [`c=${l.concurrency} baseline`, `c=${l.concurrency} ours`])],
          opKeys.map((key) => [
            key,
            ...levels.flatMap((l) => (['baseline', 'ours'] as const).map((k) => l[k].serverOpsPerRequest?.[key])),
          ]),
        ),
      );
    }
    const status = r.status as StatusPhase | undefined;
    const names = Object.keys(measured.cpuMsPerRequest);
    lines.push('', 'CPU time per request (ms, all processes; idle ones show their polling cost)', '');
    lines.push(
      table(
        ['c / system', ...names, 'total'],
        levels.flatMap((l) =>
          (['baseline', 'ours'] as const).map((k) => {
            const cpu = l[k].cpuMsPerRequest;
            const total = Object.values(cpu).reduce<number>((a, b) => a + (b ?? 0), 0);
            return [`${l.concurrency} ${k}`, ...names.map((n) => cpu[n]), round(total, 1)];
          }),
        ),
      ),
    );
    if (status) {
      const row = (name: string, st: StatusResult & { answeredFromCache?: number }) => [
        name,
        st.rps,
        st.latencyMs?.p50,
        st.latencyMs?.p99,
        st.answeredFromCache === undefined ? '-' : `${Math.round(st.answeredFromCache * 100)} %`,
        Object.entries(st.byState)
          .map(([state, sum]) => `${state} ${sum.count}x p50 ${sum.p50}`)
          .join(', '),
      ];
      lines.push('', `Status under ${status.inFlight.pollers} concurrent pollers (ms)`, '');
      lines.push(
        table(
          ['what', 'req/s', 'p50', 'p99', 'from cache', 'by state'],
          [
            row('our status endpoint, requests in flight', status.inFlight),
            row('raw describe(), same requests', status.inFlightRawDescribe),
            row('our status endpoint, finished requests', status.finished),
            row('raw describe(), same requests', status.finishedRawDescribe),
          ],
        ),
      );
    }
  }
  if (r.long) {
    const long = r.long as Awaited<ReturnType<typeof longRun>>;
    lines.push(
      '',
      `Memory run: ${long.requests} requests at c=${long.concurrency} in ${long.seconds} s (${long.throughputRps} req/s); worker RSS ${long.workerRssMiB.start} MiB at start, mean ${long.workerRssMiB.afterWarmupMean} MiB after warm-up (${long.warmupRequests} requests), mean ${long.workerRssMiB.endMean} MiB at the end, max ${long.workerRssMiB.max} MiB`,
      `  growth ${long.workerRssGrowthPercent} % (target <= 10 %: ${long.target.met ? 'met' : 'NOT met'}), slope ${long.slopeMiBPer1000Requests} MiB per 1,000 requests`,
    );
  }
  const rss = r.rssMiB as Record<string, { start?: number; end?: number; peak?: number }>;
  lines.push(
    '',
    table(
      ['RSS MiB', 'start', 'end', 'peak'],
      Object.entries(rss).map(([n, v]) => [n, v.start, v.end, v.peak]),
    ),
  );
  if (r.targets) {
    lines.push('', 'Targets', '');
    lines.push(
      table(
        ['target', 'wanted', 'measured', 'met', 'how'],
        (r.targets as Target[]).map((t) => [t.name, t.target, t.value, t.met ? 'yes' : 'NO', t.note]),
      ),
    );
  }
  const loadAtStart = (machine.loadAverageAtStart as number[])[0] ?? 0;
  if (loadAtStart > Number(machine.cpus) * 0.5) {
    lines.push(
      '',
      `NOTE: the machine was busy (load ${loadAtStart} on ${String(machine.cpus)} cores): figures are noisy; re-run on a quiet machine.`,
    );
  }
  return lines.join('\n');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
