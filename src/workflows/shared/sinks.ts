/**
 * The sink through which workflow code reports to the worker process (see `workerObservability`), which moves the
 * Prometheus series outside the sandbox. Sinks are not called on replay, so each end is counted once. No Node imports.
 */
import { proxySinks, type Sinks } from '@temporalio/workflow';

/** What the workflows report to the worker; `workerObservability` implements it. */
export interface QueueMetricsSinks extends Sinks {
  queueMetrics: {
    /** `outcome`: `ok`, an `error_type`, or `failed` when the workflow itself failed. */
    requestCompleted(modelId: string, outcome: string): void;
    /** `result`: the delivery's final state (`delivered`, `gone`, `exhausted`); latency counted from the result. */
    webhookDeliveryEnded(result: string, latencyMs: number): void;
  };
}

export const { queueMetrics } = proxySinks<QueueMetricsSinks>();
