import type { ActivityInterceptorsFactory, InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { DeliverWebhookInput, DeliveryAttemptResult, RunInferenceInput } from '../activities';
import { WebhookAttemptResult, type QueueMetrics } from './metrics';
import type { QueueMetricsSinks } from '../workflows/shared/sinks';

/**
 * Workflow interceptor modules to bundle with our workflows (`bundleWorkflowCode({ workflowInterceptorModules })`);
 * they call the sinks {@link workerObservability} returns.
 */
export const workflowInterceptorModules: string[] = [require.resolve('../workflows/shared/interceptors')];

export interface WorkerObservability {
  /** Pass as `Worker.create({ interceptors })` (merge with your own). */
  interceptors: WorkerInterceptors;
  /** Pass as `Worker.create({ sinks })` on workers that run our workflows. */
  sinks: InjectedSinks<QueueMetricsSinks>;
}

/**
 * Metrics and `request_id`-carrying logs for workers that run our workflows and activities: an
 * activity interceptor times inference and webhook attempts (and adds `request_id` to every activity
 * log line), and the sinks receive request and delivery ends from the workflow interceptor.
 */
export function workerObservability(metrics: QueueMetrics, logger: Logger): WorkerObservability {
  return {
    interceptors: { activity: [activityInterceptor(metrics, logger)] },
    sinks: {
      queueMetrics: {
        requestCompleted: {
          fn(info, modelId, outcome) {
            metrics.completed.inc({ model: modelId, outcome });
            logger.info({ request_id: info.workflowId, model_id: modelId, outcome }, 'request ended');
          },
        },
        webhookDeliveryEnded: {
          fn(info, result, latencyMs) {
            metrics.webhookDeliveryLatency.observe({ result }, latencyMs / 1000);
            logger.info(
              { request_id: requestIdOf(info.workflowId), result, latency_ms: latencyMs },
              'webhook delivery ended',
            );
          },
        },
      },
    },
  };
}

function activityInterceptor(metrics: QueueMetrics, logger: Logger): ActivityInterceptorsFactory {
  return (ctx) => {
    const { activityType, attempt, workflowExecution } = ctx.info;
    const requestId = requestIdOf(workflowExecution?.workflowId ?? '');
    return {
      outbound: {
        // Every `Context.current().log` line of our activities names the request it works for.
        getLogAttributes: (attrs, next) => ({ ...next(attrs), request_id: requestId }),
      },
      inbound: {
        async execute(input, next) {
          if (activityType === 'runInference') {
            const { modelId } = input.args[0] as RunInferenceInput;
            const started = performance.now();
            let result = 'ok';
            try {
              return await next(input);
            } catch (err) {
              result = ctx.cancellationSignal.aborted ? 'cancelled' : 'error';
              throw err;
            } finally {
              const seconds = (performance.now() - started) / 1000;
              metrics.inferenceDuration.observe({ model: modelId, result }, seconds);
              logger.info(
                { request_id: requestId, model_id: modelId, attempt, result, duration_s: seconds },
                'inference attempt ended',
              );
            }
          }
          if (activityType === 'deliverWebhook') {
            const { attempt: deliveryAttempt } = input.args[0] as DeliverWebhookInput;
            const attemptResult = (await next(input)) as DeliveryAttemptResult;
            if (attemptResult.deferred) {
              // Not an attempt: nothing was sent, and the workflow makes it again as an activity.
              metrics.webhookAttemptsDeferred.inc();
              logger.debug(
                { request_id: requestId, attempt: deliveryAttempt },
                'webhook attempt deferred to an activity',
              );
              return attemptResult;
            }
            const result = webhookAttemptResult(attemptResult);
            metrics.webhookAttempts.inc({ result });
            metrics.webhookAttemptDuration.observe({ result }, attemptResult.latencyMs / 1000);
            logger.info(
              {
                request_id: requestId,
                attempt: deliveryAttempt,
                result,
                status_code: attemptResult.statusCode,
                error: attemptResult.error,
                latency_ms: attemptResult.latencyMs,
              },
              'webhook attempt',
            );
            return attemptResult;
          }
          return next(input);
        },
      },
    };
  };
}

/** The label of one delivery attempt. */
export function webhookAttemptResult(attempt: Pick<DeliveryAttemptResult, 'delivered' | 'statusCode'>) {
  const code = attempt.statusCode;
  if (attempt.delivered) return WebhookAttemptResult.Delivered;
  if (code === undefined) return WebhookAttemptResult.NetworkError;
  if (code === 410) return WebhookAttemptResult.Gone;
  if (code >= 400 && code < 500) return WebhookAttemptResult.Http4xx;
  if (code >= 500) return WebhookAttemptResult.Http5xx;
  return WebhookAttemptResult.HttpOther;
}

/** Webhook deliveries run as `<request_id>/webhook`; the request id is the part before. */
function requestIdOf(workflowId: string): string {
  return workflowId.replace(/\/webhook$/, '');
}
