/**
 * Workflow interceptor module (bundled with the workflows, see `workflowInterceptorModules`): reports
 * how requests end through the `queueMetrics` sink, so the worker process (not the sandbox) moves the
 * Prometheus series. Sinks are not called on replay, so a request is counted once. (A delivery reports
 * its own end, from the one delivery module.) No Node imports here.
 */
import { TemporalFailure, isCancellation, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { INFERENCE_REQUEST_WORKFLOW_TYPE } from '../inference-request/messages';
import type { RequestOutcome } from './request';
import { queueMetrics } from './sinks';

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        if (workflowInfo().workflowType === INFERENCE_REQUEST_WORKFLOW_TYPE) {
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
        return next(input);
      },
    },
  ],
});
