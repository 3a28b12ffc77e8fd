/**
 * The chaos run behind `npm run chaos` and test/chaos: submits requests with webhooks through the
 * real stack (dev server, worker and API as separate processes, a receiver that fails some
 * deliveries) while faults are injected, waits for everything to drain, and accounts for every
 * request in the manner of Jepsen's total-queue checker.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterService } from '../src/cluster/services';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { ensureTemporalCli } from '../src/temporal/cli';
import { startDevServer, type DevServer } from '../src/temporal/dev-server';
import { findFreePort } from '../src/temporal/net';
import { projectRoot, serviceEnv, spawnApi, spawnWorker, writeWorkflowBundle, type ServiceProcess } from './processes';
import { WebhookReceiver, type Delivery } from './receiver';

export interface ChaosOptions {
  /** Requests to submit. */
  requests: number;
  /** Submits started per second. */
  rate: number;
  /** Share of webhook deliveries the receiver answers with a 500, at random. */
  failRate: number;
  /** kill -9 of the worker process, each followed by a restart. */
  workerKills: number;
  /** kill -9 of the API process, each followed by a restart on the same port. */
  apiRestarts: number;
  /** kill -9 of the Temporal dev server, restarted on the same database file; needs a server of our own. */
  temporalKills: number;
  /** kill -9 of a model runner process, each restarted (only a stack with separate runners: the cluster). */
  runnerKills?: number;
  /** Clean restarts of PostgreSQL under the running server (only the cluster). */
  postgresRestarts?: number;
  /**
   * Brings up the system under test instead of the default (a dev server of the run's own, one worker process with
   * control and model runner, one API): the cluster suite passes the PostgreSQL + Temporal server topology.
   */
  stack?: (setup: ChaosStackSetup) => Promise<ChaosStack>;
  /** How long the receiver refuses connections (once); 0 = never. */
  receiverOutageMs: number;
  /** How long each no-op inference takes, so that kills find runs in progress. */
  modelDelayMs: number;
  /** Concurrency limit of the model (its admission queue); `unlimited` = none. */
  modelConcurrency: number | 'unlimited';
  /** `WEBHOOK_SCHEDULE` of the run: short, so the drain takes minutes, not a day. */
  webhookSchedule: string;
  webhookTimeoutMs: number;
  /** Give up waiting for the drain after this long. */
  drainTimeoutMs: number;
  /** Wait this long after the drain for late duplicate deliveries; default: one attempt's timeout plus 6 s. */
  settleMs?: number;
  /** Use this Temporal server instead of starting one (then `temporalKills` must be 0). */
  temporalAddress?: string;
  /** A prebuilt bundle of our workflows; omitted = bundled at start. */
  workflowBundlePath?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Called about once a second during submission and drain. */
  onProgress?: (p: { phase: 'submit' | 'drain' | 'settle'; done: number; total: number; note: string }) => void;
}

/** What the run hands a {@link ChaosOptions.stack}: the settings our processes must run with. */
export interface ChaosStackSetup {
  /** A scratch directory of the run, removed at the end. */
  dir: string;
  /**
   * Environment of our processes: MODELS_FILE (the no-op chaos model), TEMPORAL_TASK_QUEUE, API_KEYS,
   * WEBHOOK_SCHEDULE, WEBHOOK_TIMEOUT_MS, EGRESS_ALLOW, LOG_LEVEL and, when given, WORKFLOW_BUNDLE_PATH.
   */
  env: Record<string, string>;
  log: (line: string) => void;
  /** To be called when a process exits without being killed; the stack restarts it. */
  onUnplannedExit(name: string, how: string, output: string): void;
}

/** A system under test that the run can submit to and inject faults into. */
export interface ChaosStack {
  apiUrl: string;
  /**
   * The faults this stack supports, by kind; each injects its fault, waits until the component is back, and
   * resolves with a description for the report. Kinds asked for in the options but missing here fail the run.
   */
  faults: Partial<Record<ChaosFaultKind, () => Promise<string>>>;
  stop(): Promise<void>;
}

/** Faults the nemesis injects, one kind per component. */
export type ChaosFaultKind = 'worker' | 'api' | 'temporal' | 'runner' | 'postgres' | 'receiver';

/** Settings of `npm run chaos` (N = 1,000). */
export const DEFAULT_CHAOS_OPTIONS: ChaosOptions = {
  requests: 1000,
  rate: 10,
  failRate: 0.2,
  workerKills: 3,
  apiRestarts: 1,
  temporalKills: 1,
  receiverOutageMs: 15_000,
  modelDelayMs: 200,
  modelConcurrency: 16,
  webhookSchedule: '0s,1s,2s,5s,10s,10s,15s,20s,30s,30s,60s,60s',
  webhookTimeoutMs: 3000,
  drainTimeoutMs: 15 * 60_000,
};

/** One fault as it happened. */
export interface FaultEvent {
  /** Seconds since the first submit. */
  at: number;
  kind:
    | 'kill-worker'
    | 'kill-api'
    | 'kill-temporal'
    | 'kill-runner'
    | 'restart-postgres'
    | 'receiver-down'
    | 'receiver-up'
    | 'unplanned-exit';
  detail: string;
}

/** The accounting, in Jepsen total-queue terms, with request ids where a count is not zero. */
export interface ChaosReport {
  ok: boolean;
  options: Omit<ChaosOptions, 'log' | 'onProgress'>;
  /** Requests the client tried to submit (each retried until acknowledged or out of time). */
  submitted: number;
  /** POSTs made, retries included. */
  submitAttempts: number;
  /** Attempts that ended without an answer or with a non-200 (the request may or may not exist). */
  indeterminateAttempts: number;
  /** What the indeterminate attempts saw (HTTP status or error), counted. */
  indeterminateReasons: Record<string, number>;
  /** Requests that got a 200 with a request_id. */
  acknowledged: number;
  /** Requests never acknowledged despite retries (not a loss: the client knows it failed). */
  notAcknowledged: number;
  /** Acknowledged requests whose status is COMPLETED, split by outcome. */
  terminal: number;
  terminalOk: number;
  terminalError: number;
  /** Acknowledged requests with at least one accepted (2xx-answered) webhook. */
  delivered: number;
  /** Acknowledged but never terminal, or never delivered. */
  lost: number;
  lostIds: string[];
  /** Accepted webhooks of requests from unacknowledged attempts: they ran although the client saw no 200. */
  recovered: number;
  /** Accepted webhooks that match no attempt of ours, or carry another request's payload. */
  unexpected: number;
  unexpectedSamples: unknown[];
  /** Requests with more than one accepted webhook, and how their `webhook-id` headers compare. */
  duplicated: {
    requests: number;
    extraDeliveries: number;
    sameWebhookId: number;
    differentWebhookIds: number;
    withoutWebhookId: number;
  };
  /** Every POST the receiver saw, and how it answered. */
  deliveryAttempts: { total: number; accepted: number; failedOnPurpose: number };
  faults: FaultEvent[];
  /** Services that exited without being killed, restarted by the run's supervisor. */
  unplannedExits: number;
  timings: {
    /** First submit to last acknowledgement. */
    submitSeconds: number;
    /** From the end of submitting and of the faults to every acknowledged request delivered and terminal. */
    drainSeconds: number;
    totalSeconds: number;
  };
  /** Shown when the drain gave up. */
  drainTimedOut: boolean;
}

const MODEL_ID = 'chaos/noop';
const API_KEY = 'chaos:chaos-secret';
const SUBMIT_TIMEOUT_MS = 30_000;
const SUBMIT_GIVE_UP_MS = 180_000;
const MAX_SUBMITS_IN_FLIGHT = 32;

interface Attempt {
  seq: number;
  attempt: number;
  requestId?: string;
  outcome: 'acknowledged' | 'indeterminate';
  detail?: string;
}

/** The body of submit attempt `attempt` of request `seq`; the no-op model echoes it into the webhook payload. */
interface Marker {
  chaos: string;
  seq: number;
  attempt: number;
}

/** Runs the whole chaos scenario and returns its accounting; never throws for a failed check, only for a broken setup. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  if (options.temporalKills > 0 && options.temporalAddress && !options.stack) {
    throw new Error('temporalKills needs a dev server of the run’s own: leave temporalAddress unset');
  }
  const log = options.log ?? (() => undefined);
  const runId = randomUUID();
  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-chaos-'));
  const cleanups: (() => Promise<unknown>)[] = [];
  const faults: FaultEvent[] = [];
  let t0 = Date.now();
  const since = () => Math.round((Date.now() - t0) / 100) / 10;
  const fault = (kind: FaultEvent['kind'], detail: string) => {
    faults.push({ at: since(), kind, detail });
    log(`[${since()} s] ${kind}: ${detail}`);
  };

  try {
    const receiver = await WebhookReceiver.start({ failRate: options.failRate });
    cleanups.push(() => receiver.close());

    const modelsFile = join(dir, 'models.json');
    writeFileSync(
      modelsFile,
      JSON.stringify({
        models: [
          {
            id: MODEL_ID,
            backend: { kind: 'builtin', name: 'noop', options: { delayMs: options.modelDelayMs } },
            concurrency: options.modelConcurrency,
            // Faults must not exhaust attempts, and a dead runner must be noticed within seconds.
            maxAttempts: 20,
            heartbeatTimeoutSeconds: 3,
            timeoutSeconds: 30,
          },
        ],
      }),
    );
    const env: Record<string, string> = {
      MODELS_FILE: modelsFile,
      TEMPORAL_TASK_QUEUE: `chaos-${runId}`,
      API_KEYS: API_KEY,
      WEBHOOK_SCHEDULE: options.webhookSchedule,
      WEBHOOK_TIMEOUT_MS: String(options.webhookTimeoutMs),
      EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
      LOG_LEVEL: 'info',
      ...(options.workflowBundlePath ? { WORKFLOW_BUNDLE_PATH: options.workflowBundlePath } : {}),
    };
    let unplannedExits = 0;
    const onUnplannedExit = (name: string, how: string, output: string) => {
      unplannedExits++;
      fault('unplanned-exit', `${name} exited (${how}) on its own; restarting it. Last output:\n${output}`);
    };
    const stack = await (options.stack ?? ((setup) => devServerStack(options, setup)))({
      dir,
      env,
      log,
      onUnplannedExit,
    });
    cleanups.push(() => stack.stop());
    const apiUrl = stack.apiUrl;

    // The client: each request is retried until acknowledged; every attempt carries its own marker.
    const attempts: Attempt[] = [];
    const acknowledged = new Map<string, Attempt>();
    const ackBySeq = new Map<number, Attempt>();
    let submittedCount = 0;
    let lastAckAt = 0;
    const submitOne = async (seq: number) => {
      const giveUpAt = Date.now() + SUBMIT_GIVE_UP_MS;
      for (let attempt = 1; Date.now() < giveUpAt; attempt++) {
        const marker: Marker = { chaos: runId, seq, attempt };
        const record: Attempt = { seq, attempt, outcome: 'indeterminate' };
        attempts.push(record);
        try {
          const res = await fetch(`${apiUrl}/${MODEL_ID}?fal_webhook=${encodeURIComponent(receiver.url)}`, {
            method: 'POST',
            headers: { authorization: `Key ${API_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify(marker),
            signal: AbortSignal.timeout(SUBMIT_TIMEOUT_MS),
          });
          const body = (await res.json().catch(() => ({}))) as { request_id?: unknown };
          if (res.status === 200 && typeof body.request_id === 'string') {
            record.outcome = 'acknowledged';
            record.requestId = body.request_id;
            acknowledged.set(body.request_id, record);
            ackBySeq.set(seq, record);
            lastAckAt = Date.now();
            return;
          }
          record.detail = `HTTP ${res.status}`;
        } catch (err) {
          // fetch hides the socket error (ECONNREFUSED while the API is down) in its cause.
          const error = err as Error & { cause?: { code?: string } };
          record.detail = error.cause?.code ?? error.name;
        }
        await sleep(500);
      }
    };

    // Faults, spread over the submissions, round-robin over the components.
    const kinds: ChaosFaultKind[] = [];
    const left: Record<ChaosFaultKind, number> = {
      worker: options.workerKills,
      api: options.apiRestarts,
      temporal: options.temporalKills,
      runner: options.runnerKills ?? 0,
      postgres: options.postgresRestarts ?? 0,
      receiver: options.receiverOutageMs > 0 ? 1 : 0,
    };
    for (const kind of Object.keys(left) as ChaosFaultKind[]) {
      if (left[kind] > 0 && kind !== 'receiver' && !stack.faults[kind]) {
        throw new Error(`this stack cannot inject ${kind} faults`);
      }
    }
    while (Object.values(left).some((n) => n > 0)) {
      for (const kind of Object.keys(left) as ChaosFaultKind[]) {
        if (left[kind] > 0) {
          kinds.push(kind);
          left[kind]--;
        }
      }
    }
    const faultKinds: Record<Exclude<ChaosFaultKind, 'receiver'>, FaultEvent['kind']> = {
      worker: 'kill-worker',
      api: 'kill-api',
      temporal: 'kill-temporal',
      runner: 'kill-runner',
      postgres: 'restart-postgres',
    };
    let receiverBack: Promise<void> = Promise.resolve();
    const nemesis = async () => {
      for (const [i, kind] of kinds.entries()) {
        const due = Math.ceil(((i + 1) / (kinds.length + 1)) * options.requests);
        while (submittedCount < due) await sleep(50);
        if (kind === 'receiver') {
          fault('receiver-down', `receiver refuses connections for ${options.receiverOutageMs} ms`);
          await receiver.down();
          receiverBack = sleep(options.receiverOutageMs).then(async () => {
            await receiver.up();
            fault('receiver-up', 'receiver accepts connections again');
          });
          continue;
        }
        const at = since();
        const detail = await stack.faults[kind]!();
        faults.push({ at, kind: faultKinds[kind], detail });
        log(`[${at} s] ${faultKinds[kind]}: ${detail} (back after ${round1(since() - at)} s)`);
      }
    };

    log(`submitting ${options.requests} requests at ${options.rate}/s`);
    t0 = Date.now();
    const nemesisDone = nemesis();
    const inFlight = new Set<Promise<void>>();
    const ticker = setInterval(() => {
      options.onProgress?.({
        phase: 'submit',
        done: acknowledged.size,
        total: options.requests,
        note: `${attempts.length} attempts, ${receiver.firstAccepted.size} delivered`,
      });
    }, 1000);
    for (let seq = 0; seq < options.requests; seq++) {
      const due = t0 + (seq / options.rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      while (inFlight.size >= MAX_SUBMITS_IN_FLIGHT) await Promise.race(inFlight);
      const p = submitOne(seq).finally(() => inFlight.delete(p));
      inFlight.add(p);
      submittedCount = seq + 1;
    }
    await Promise.all(inFlight);
    await nemesisDone;
    await receiverBack;
    clearInterval(ticker);
    options.onProgress?.({
      phase: 'submit',
      done: acknowledged.size,
      total: options.requests,
      note: `${attempts.length} attempts`,
    });
    const submitSeconds = (lastAckAt - t0) / 1000;

    // Drain: every acknowledged request delivered (accepted by the receiver) and COMPLETED.
    log(`[${since()} s] draining`);
    const drainStarted = Date.now();
    const deadline = drainStarted + options.drainTimeoutMs;
    const terminal = new Map<string, 'OK' | 'ERROR'>();
    const checkTerminal = async (ids: string[]) => {
      const queue = [...ids];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let id = queue.shift(); id; id = queue.shift()) {
            const state = await requestState(apiUrl, id).catch(() => undefined);
            if (state) terminal.set(id, state);
          }
        }),
      );
    };
    let drainTimedOut = false;
    for (;;) {
      const undelivered = [...acknowledged.keys()].filter((id) => !receiver.firstAccepted.has(id));
      await checkTerminal([...acknowledged.keys()].filter((id) => !terminal.has(id) && !undelivered.includes(id)));
      const notTerminal = [...acknowledged.keys()].filter((id) => !terminal.has(id));
      options.onProgress?.({
        phase: 'drain',
        done: acknowledged.size - Math.max(undelivered.length, notTerminal.length),
        total: acknowledged.size,
        note: `${undelivered.length} undelivered, ${notTerminal.length} not terminal`,
      });
      if (undelivered.length === 0 && notTerminal.length === 0) break;
      if (Date.now() > deadline) {
        drainTimedOut = true;
        log(`drain timed out: ${undelivered.length} undelivered, ${notTerminal.length} not terminal`);
        break;
      }
      await sleep(1000);
    }
    const drainSeconds = (Date.now() - drainStarted) / 1000;
    // Requests never delivered are still asked for: terminal but undelivered is a different failure than neither.
    await checkTerminal([...acknowledged.keys()].filter((id) => !terminal.has(id)));
    // Late duplicates: an attempt cut short by a kill is retried after its timeout; give them time to show.
    const settleMs = options.settleMs ?? options.webhookTimeoutMs + 6000;
    options.onProgress?.({ phase: 'settle', done: 0, total: 0, note: `${settleMs / 1000} s for late duplicates` });
    await sleep(settleMs);

    return account({
      options,
      runId,
      attempts,
      acknowledged,
      ackBySeq,
      terminal,
      deliveries: receiver.deliveries,
      faults,
      unplannedExits,
      timings: {
        submitSeconds: round1(submitSeconds),
        drainSeconds: round1(drainSeconds),
        totalSeconds: round1((Date.now() - t0) / 1000),
      },
      drainTimedOut,
    });
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The default system under test: a dev server of the run's own on a SQLite file (so it can be killed and restarted
 * on it) or the given `temporalAddress`, one worker process (control worker and model runner), one API.
 */
async function devServerStack(options: ChaosOptions, setup: ChaosStackSetup): Promise<ChaosStack> {
  const { dir, log } = setup;
  const cleanups: (() => Promise<unknown>)[] = [];
  const dbFile = join(dir, 'temporal.db');
  let temporal: DevServer | undefined;
  let cliPath: string | undefined;
  let address = options.temporalAddress;
  if (!address) {
    cliPath = await ensureTemporalCli({ projectRoot, log });
    temporal = await startDevServer({
      cliPath,
      dbFile,
      port: 0,
      uiPort: false,
      searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
    });
    address = temporal.address;
    cleanups.push(() => temporal!.stop());
  }
  const temporalPort = Number(address.slice(address.lastIndexOf(':') + 1));
  const bundle = setup.env.WORKFLOW_BUNDLE_PATH ?? (await writeWorkflowBundle(dir, 'workflows.js'));
  const apiPort = await findFreePort();
  const env = {
    ...serviceEnv({
      temporalAddress: address,
      taskQueue: setup.env.TEMPORAL_TASK_QUEUE!,
      dataDir: dir,
      modelsFile: setup.env.MODELS_FILE!,
      workflowBundlePath: bundle,
      apiKeys: setup.env.API_KEYS!,
      webhookSchedule: options.webhookSchedule,
      webhookTimeoutMs: options.webhookTimeoutMs,
    }),
  };
  log('starting the worker and the API');
  // The cluster's supervisor: a killed process comes back, and one that dies by itself is counted and restarted.
  const supervised = (name: string, start: () => ServiceProcess) => {
    const service = new ClusterService(name, start, () => undefined);
    service.onUnplannedExit = (how, output) => setup.onUnplannedExit(name, how, output);
    return service;
  };
  const worker = supervised('worker', () => spawnWorker(env));
  const api = supervised('api', () => spawnApi({ ...env, PORT: String(apiPort) }));
  cleanups.push(() => Promise.all([worker.stop(), api.stop()]));
  await Promise.all([worker.current.ready, api.current.ready]);
  const faults: ChaosStack['faults'] = {
    worker: async () => {
      const pid = worker.current.pid;
      await worker.crashAndRestart(1000);
      return `kill -9 worker pid ${pid}; back as pid ${worker.current.pid}`;
    },
    api: async () => {
      const pid = api.current.pid;
      await api.crashAndRestart(500);
      return `kill -9 API pid ${pid}, restarted on port ${apiPort} as pid ${api.current.pid}`;
    },
  };
  if (temporal) {
    faults.temporal = async () => {
      const pid = temporal!.pid;
      process.kill(pid, 'SIGKILL');
      await sleep(1000);
      temporal = await restartDevServer(cliPath!, dbFile, temporalPort);
      return `kill -9 dev server pid ${pid}, restarted on ${dbFile} as pid ${temporal.pid}`;
    };
  }
  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    faults,
    async stop() {
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    },
  };
}

/** The request's terminal outcome through the status endpoint, or undefined while it is not COMPLETED. */
async function requestState(apiUrl: string, requestId: string): Promise<'OK' | 'ERROR' | undefined> {
  const res = await fetch(`${apiUrl}/${MODEL_ID}/requests/${requestId}/status`, {
    headers: { authorization: `Key ${API_KEY}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as { status?: string; error?: unknown };
  if (body.status !== 'COMPLETED') return undefined;
  return body.error ? 'ERROR' : 'OK';
}

async function restartDevServer(cliPath: string, dbFile: string, port: number): Promise<DevServer> {
  // The old process's port can take a moment to be free; the database is what must carry over.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServer({
        cliPath,
        dbFile,
        port,
        uiPort: false,
        searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
      });
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(1000);
    }
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Jepsen total-queue accounting of one run. */
export function account(run: {
  options: ChaosOptions;
  runId: string;
  attempts: Attempt[];
  acknowledged: Map<string, Attempt>;
  ackBySeq: Map<number, Attempt>;
  terminal: Map<string, 'OK' | 'ERROR'>;
  deliveries: Delivery[];
  faults: FaultEvent[];
  unplannedExits: number;
  timings: ChaosReport['timings'];
  drainTimedOut: boolean;
}): ChaosReport {
  const accepted = run.deliveries.filter((d) => d.answered >= 200 && d.answered < 300);
  const byRequest = new Map<string, Delivery[]>();
  for (const d of accepted) {
    const key = d.requestId ?? '(none)';
    byRequest.set(key, [...(byRequest.get(key) ?? []), d]);
  }
  const lostIds = [...run.acknowledged.keys()].filter((id) => !byRequest.has(id) || !run.terminal.has(id));
  const unexpectedSamples: unknown[] = [];
  let recovered = 0;
  for (const [requestId, list] of byRequest) {
    const marker = markerOf(list[0]!.body);
    const ack = run.acknowledged.get(requestId);
    if (ack) {
      // An acknowledged request must carry its own attempt's payload, not another's.
      if (!marker || marker.chaos !== run.runId || marker.seq !== ack.seq || marker.attempt !== ack.attempt) {
        unexpectedSamples.push({ requestId, body: list[0]!.body, expected: { seq: ack.seq, attempt: ack.attempt } });
      }
    } else if (
      marker?.chaos === run.runId &&
      run.attempts.some((a) => a.seq === marker.seq && a.attempt === marker.attempt)
    ) {
      recovered++;
    } else {
      unexpectedSamples.push({ requestId, body: list[0]!.body });
    }
  }
  const duplicated = { requests: 0, extraDeliveries: 0, sameWebhookId: 0, differentWebhookIds: 0, withoutWebhookId: 0 };
  for (const list of byRequest.values()) {
    if (list.length < 2) continue;
    duplicated.requests++;
    duplicated.extraDeliveries += list.length - 1;
    const ids = new Set(list.map((d) => d.webhookId));
    if (ids.has(undefined)) duplicated.withoutWebhookId++;
    else if (ids.size === 1) duplicated.sameWebhookId++;
    else duplicated.differentWebhookIds++;
  }
  const terminalValues = [...run.terminal.entries()].filter(([id]) => run.acknowledged.has(id)).map(([, v]) => v);
  const { log: _log, onProgress: _onProgress, ...options } = run.options;
  const lost = lostIds.length;
  return {
    ok: lost === 0 && unexpectedSamples.length === 0,
    options,
    submitted: run.options.requests,
    submitAttempts: run.attempts.length,
    indeterminateAttempts: run.attempts.filter((a) => a.outcome === 'indeterminate').length,
    indeterminateReasons: run.attempts
      .filter((a) => a.outcome === 'indeterminate')
      .reduce<Record<string, number>>((counts, a) => {
        const reason = a.detail ?? 'unknown';
        counts[reason] = (counts[reason] ?? 0) + 1;
        return counts;
      }, {}),
    acknowledged: run.acknowledged.size,
    notAcknowledged: run.options.requests - run.ackBySeq.size,
    terminal: terminalValues.length,
    terminalOk: terminalValues.filter((v) => v === 'OK').length,
    terminalError: terminalValues.filter((v) => v === 'ERROR').length,
    delivered: [...run.acknowledged.keys()].filter((id) => byRequest.has(id)).length,
    lost,
    lostIds,
    recovered,
    unexpected: unexpectedSamples.length,
    unexpectedSamples: unexpectedSamples.slice(0, 10),
    duplicated,
    deliveryAttempts: {
      total: run.deliveries.length,
      accepted: accepted.length,
      failedOnPurpose: run.deliveries.filter((d) => d.answered === 500).length,
    },
    faults: run.faults,
    unplannedExits: run.unplannedExits,
    timings: run.timings,
    drainTimedOut: run.drainTimedOut,
  };
}

function markerOf(body: unknown): Marker | undefined {
  const payload = (body as { payload?: unknown } | undefined)?.payload as Partial<Marker> | undefined;
  if (!payload || typeof payload.chaos !== 'string' || typeof payload.seq !== 'number') return undefined;
  return payload as Marker;
}

/** The report as the terminal shows it. */
export function formatChaosReport(r: ChaosReport): string {
  const d = r.duplicated;
  const rows: [string, string | number][] = [
    ['submitted', r.submitted],
    ['submit attempts (retries included)', r.submitAttempts],
    [
      'indeterminate attempts',
      `${r.indeterminateAttempts} ${JSON.stringify(r.indeterminateReasons).replace(/"/g, '').replace(/,/g, ', ')}`,
    ],
    ['acknowledged', r.acknowledged],
    ['not acknowledged (client gave up)', r.notAcknowledged],
    ['terminal (COMPLETED)', `${r.terminal} (OK ${r.terminalOk}, ERROR ${r.terminalError})`],
    ['delivered (webhook accepted)', r.delivered],
    ['LOST (acknowledged, never terminal or never delivered)', r.lost],
    ['recovered (unacknowledged attempts that ran)', r.recovered],
    ['unexpected', r.unexpected],
    [
      'duplicated deliveries',
      `${d.requests} requests, ${d.extraDeliveries} extra; same webhook-id ${d.sameWebhookId}, different ${d.differentWebhookIds}, no header ${d.withoutWebhookId}`,
    ],
    [
      'delivery attempts seen',
      `${r.deliveryAttempts.total} (${r.deliveryAttempts.accepted} accepted, ${r.deliveryAttempts.failedOnPurpose} answered 500 on purpose)`,
    ],
    ['unplanned process exits', r.unplannedExits],
    [
      'time to submit / drain / total',
      `${r.timings.submitSeconds} s / ${r.timings.drainSeconds} s / ${r.timings.totalSeconds} s`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    '',
    'Faults:',
    ...r.faults.map((f) => `  ${String(f.at).padStart(6)} s  ${f.kind.padEnd(14)} ${f.detail.split('\n')[0]}`),
    '',
    ...rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`),
    ...(r.lost > 0 ? ['', `lost request ids: ${r.lostIds.slice(0, 20).join(', ')}${r.lost > 20 ? ', …' : ''}`] : []),
    ...(r.unexpected > 0 ? ['', `unexpected (first ones): ${JSON.stringify(r.unexpectedSamples.slice(0, 3))}`] : []),
    ...(r.drainTimedOut ? ['', 'the drain timed out'] : []),
    '',
    r.ok ? 'OK: every acknowledged request reached a terminal state and was delivered' : 'FAILED: see above',
  ].join('\n');
}
