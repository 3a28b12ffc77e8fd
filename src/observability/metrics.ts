import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One model's backlog, as Temporal reports it for the model's task queue. */
export interface QueueSample {
  model: string;
  /** Runs waiting for a runner (approximate: Temporal refreshes it every few seconds). */
  depth: number;
  /** Age of the oldest waiting run, in seconds; 0 when none waits. */
  oldestAgeSeconds: number;
}

/** Reads the current backlog of some models; the API registers one (see `queue-depth.ts`). */
export type QueueProbe = () => Promise<QueueSample[]>;

/** Result label of one webhook attempt. */
export const WebhookAttemptResult = {
  Delivered: 'delivered',
  /** The receiver answered 410: delivery stops. */
  Gone: 'gone',
  Http4xx: 'http_4xx',
  Http5xx: 'http_5xx',
  /** 1xx/3xx: redirects are not followed. */
  HttpOther: 'http_other',
  /** No HTTP answer: connection refused, DNS, timeout. */
  NetworkError: 'network_error',
} as const;
export type WebhookAttemptResult = (typeof WebhookAttemptResult)[keyof typeof WebhookAttemptResult];

/**
 * The queue's Prometheus series. Which process moves which series:
 *
 * | series | moved by |
 * | --- | --- |
 * | `fal_queue_requests_submitted_total{model}` | API (submit) |
 * | `fal_queue_requests_started_eagerly_total{model}` | API (submit, sharing its connection with a control worker) |
 * | `fal_queue_depth{model}`, `fal_queue_oldest_age_seconds{model}` | API, read from Temporal at scrape time |
 * | `fal_queue_requests_completed_total{model,outcome}` | control worker (workflow interceptor → sink) |
 * | `fal_queue_webhook_delivery_latency_seconds{result}` | control worker (workflow interceptor → sink) |
 * | `fal_queue_webhook_attempts_total{result}`, `fal_queue_webhook_attempt_duration_seconds{result}` | control worker (activity interceptor) |
 * | `fal_queue_webhook_attempts_deferred_total` | control worker (activity interceptor) |
 * | `fal_queue_inference_duration_seconds{model,result}` | model runner (activity interceptor) |
 * | `fal_queue_status_reads_total{source}` | API (its status view cache) |
 */
export interface QueueMetrics {
  registry: Registry;
  submitted: Counter<'model'>;
  startedEagerly: Counter<'model'>;
  completed: Counter<'model' | 'outcome'>;
  inferenceDuration: Histogram<'model' | 'result'>;
  webhookAttempts: Counter<'result'>;
  webhookAttemptsDeferred: Counter;
  webhookAttemptDuration: Histogram<'result'>;
  webhookDeliveryLatency: Histogram<'result'>;
  statusReads: Counter<'source'>;
  /** Adds a source of backlog samples, read at every scrape; returns its removal. */
  addQueueProbe(probe: QueueProbe): () => void;
}

// Probes run once per scrape even though two gauges read them.
const PROBE_REUSE_MS = 1_000;

/** Creates the series on `registry` (a fresh one by default, so tests and embedders can keep their own). */
export function createMetrics(registry: Registry = new Registry()): QueueMetrics {
  const probes = new Set<QueueProbe>();
  let lastProbe: { at: number; samples: Promise<QueueSample[]> } | undefined;
  const sample = (): Promise<QueueSample[]> => {
    if (!lastProbe || Date.now() - lastProbe.at > PROBE_REUSE_MS) {
      const samples = Promise.all([...probes].map((probe) => probe().catch(() => [] as QueueSample[]))).then((all) =>
        all.flat(),
      );
      lastProbe = { at: Date.now(), samples };
    }
    return lastProbe.samples;
  };

  new Gauge({
    name: 'fal_queue_depth',
    help: 'Runs waiting for a runner, per model (Temporal task queue backlog, approximate)',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await sample()) this.set({ model: s.model }, s.depth);
    },
  });
  new Gauge({
    name: 'fal_queue_oldest_age_seconds',
    help: 'Age of the oldest run waiting for a runner, per model',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await sample()) this.set({ model: s.model }, s.oldestAgeSeconds);
    },
  });

  return {
    registry,
    submitted: new Counter({
      name: 'fal_queue_requests_submitted_total',
      help: 'Requests accepted by the API',
      labelNames: ['model'],
      registers: [registry],
    }),
    startedEagerly: new Counter({
      name: 'fal_queue_requests_started_eagerly_total',
      help: 'Accepted requests whose first workflow task came back with the start, to a control worker of the API process',
      labelNames: ['model'],
      registers: [registry],
    }),
    completed: new Counter({
      name: 'fal_queue_requests_completed_total',
      help: 'Requests that ended, by outcome: ok, or the error_type (validation_error, runner_error, cancelled, ...)',
      labelNames: ['model', 'outcome'],
      registers: [registry],
    }),
    inferenceDuration: new Histogram({
      name: 'fal_queue_inference_duration_seconds',
      help: 'Duration of one inference attempt on a runner, by result (ok, error, cancelled)',
      labelNames: ['model', 'result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    webhookAttempts: new Counter({
      name: 'fal_queue_webhook_attempts_total',
      help: 'Webhook delivery attempts, by result (delivered, gone, http_4xx, http_5xx, http_other, network_error)',
      labelNames: ['result'],
      registers: [registry],
    }),
    webhookAttemptsDeferred: new Counter({
      name: 'fal_queue_webhook_attempts_deferred_total',
      help:
        'First webhook attempts deferred from a local activity to an activity, before anything was sent ' +
        '(WEBHOOK_LOCAL_ATTEMPTS under way, or a receiver that was slow)',
      registers: [registry],
    }),
    webhookAttemptDuration: new Histogram({
      name: 'fal_queue_webhook_attempt_duration_seconds',
      help: 'Duration of one webhook POST, by result',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
      registers: [registry],
    }),
    webhookDeliveryLatency: new Histogram({
      name: 'fal_queue_webhook_delivery_latency_seconds',
      help: 'From the end of a request to the end of its webhook delivery (retries included), by final state (delivered, gone, exhausted)',
      labelNames: ['result'],
      buckets: [0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 7200, 21600, 43200, 86400, 172800],
      registers: [registry],
    }),
    statusReads: new Counter({
      name: 'fal_queue_status_reads_total',
      help: "Request states the API answered with (status, result, streams), by source: cache (the API's view cache) or temporal (read for this answer)",
      labelNames: ['source'],
      registers: [registry],
    }),
    addQueueProbe(probe) {
      probes.add(probe);
      lastProbe = undefined;
      return () => {
        probes.delete(probe);
        lastProbe = undefined;
      };
    },
  };
}

let processWide: QueueMetrics | undefined;

/**
 * The series of this process, with Node's default process metrics. The API and the workers of one
 * process (`npm start`, tests) share them, so the API's `/metrics` shows the workers' series too.
 */
export function processMetrics(): QueueMetrics {
  if (!processWide) {
    processWide = createMetrics(new Registry());
    collectDefaultMetrics({ register: processWide.registry });
  }
  return processWide;
}
