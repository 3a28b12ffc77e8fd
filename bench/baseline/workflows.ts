import { proxyActivities } from '@temporalio/workflow';
import type { BaselineActivities } from './activities';

export interface BaselineInput {
  /** Workflow id, echoed as `request_id` in the webhook body so the receiver can match it. */
  id: string;
  webhookUrl: string;
  /** Task queue of the no-op model, polled by its own worker as our model runners are. */
  modelTaskQueue: string;
  input: unknown;
}

/**
 * The baseline: the least a Temporal application needs to do what one of our requests does
 * (inference activity on a model queue, then one webhook POST activity), in one workflow.
 */
export async function baselineRequest(req: BaselineInput): Promise<void> {
  const { noopInference } = proxyActivities<BaselineActivities>({
    taskQueue: req.modelTaskQueue,
    startToCloseTimeout: '1 minute',
  });
  const { postWebhook } = proxyActivities<BaselineActivities>({ startToCloseTimeout: '1 minute' });
  const output = await noopInference(req.input);
  await postWebhook({ url: req.webhookUrl, body: { request_id: req.id, status: 'OK', payload: output } });
}
