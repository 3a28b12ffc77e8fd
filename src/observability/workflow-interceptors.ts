/**
 * Workflow interceptor module (bundled with the workflows, see `workflowInterceptorModules`): reports
 * how requests and webhook deliveries end through the `queueMetrics` sink, so the worker process
 * (not the sandbox) moves the Prometheus series. Sinks are not called on replay, so a request is
 * counted once. No Node imports here.
 */
import {
  TemporalFailure,
  isCancellation,
  proxySinks,
  workflowInfo,
  type Sinks,
  type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';
import type { RequestOutcome } from '../domain/request';
import { inferenceRequest } from '../workflows/inference-request';
import { webhookDelivery, type DeliveryReport } from '../workflows/webhook-delivery';

/** What the workflows report to the worker; `workerObservability` implements it. */
export interface QueueMetricsSinks extends Sinks {
  queueMetrics: {
    /** `outcome`: `ok`, an `error_type`, or `failed` when the workflow itself failed. */
    requestCompleted(modelId: string, outcome: string): void;
    /** `result`: the delivery's final state (`delivered`, `gone`, `exhausted`). */
    webhookDeliveryEnded(result: string, latencyMs: number): void;
  };
}

const { queueMetrics } = proxySinks<QueueMetricsSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        const { workflowType, startTime } = workflowInfo();
        if (workflowType === inferenceRequest.name) {
          const modelId = String((input.args[0] as { modelId?: unknown } | undefined)?.modelId ?? 'unknown');
          try {
            const outcome = (await next(input)) as RequestOutcome;
            queueMetrics.requestCompleted(modelId, outcome.status === 'OK' ? 'ok' : outcome.errorType);
            return outcome;
          } catch (err) {
            // Anything else fails the workflow *task*, which Temporal retries: not an end yet.
            if (isCancellation(err)) queueMetrics.requestCompleted(modelId, 'cancelled');
            else if (err instanceof TemporalFailure) queueMetrics.requestCompleted(modelId, 'failed');
            throw err;
          }
        }
        if (workflowType === webhookDelivery.name) {
          const report = (await next(input)) as DeliveryReport;
          // Workflow time: the start of this delivery is the moment its request ended.
          queueMetrics.webhookDeliveryEnded(report.state, Date.now() - startTime.getTime());
          return report;
        }
        return next(input);
      },
    },
  ],
});
