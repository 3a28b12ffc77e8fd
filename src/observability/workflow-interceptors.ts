/**
 * Workflow interceptor module (bundled with the workflows, see `workflowInterceptorModules`): reports
 * how requests and webhook deliveries end through the `queueMetrics` sink, so the worker process
 * (not the sandbox) moves the Prometheus series. Sinks are not called on replay, so a request is
 * counted once. No Node imports here.
 */
import { TemporalFailure, isCancellation, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import type { RequestOutcome } from '../domain/request';
import { inferenceRequest } from '../workflows/inference-request';
import { webhookDelivery, type DeliveryReport, type WebhookDeliveryInput } from '../workflows/webhook-delivery';
import { queueMetrics } from './workflow-sinks';

export type { QueueMetricsSinks } from './workflow-sinks';

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
          // Workflow time, from the moment the request's result existed (before a first attempt made inline).
          const resultAt = (input.args[0] as WebhookDeliveryInput | undefined)?.resultAt ?? startTime.getTime();
          queueMetrics.webhookDeliveryEnded(report.state, Date.now() - resultAt);
          return report;
        }
        return next(input);
      },
    },
  ],
});
