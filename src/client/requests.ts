import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { InferenceHeartbeat } from '../activities';
import { QueueStatus, type LogEntry, type RequestOutcome } from '../domain/request';
import { modelTaskQueue, type ModelRegistry } from '../models/registry';
import {
  cancelledOutcome,
  inferenceRequest,
  progressQuery,
  type InferenceRequestInput,
  type RequestProgress,
} from '../workflows';

const PendingState = temporal.api.enums.v1.PendingActivityState;

/** What the workflow memo carries so the API can authorise a request without asking a worker. */
interface RequestMemo {
  owner: string;
  modelId: string;
}

export interface SubmitRequest {
  owner: string;
  modelId: string;
  input: unknown;
  webhookUrl?: string;
}

/** A request as the queue API reports it. */
export type RequestView =
  | { requestId: string; modelId: string; status: typeof QueueStatus.InQueue; queuePosition: number; logs: LogEntry[] }
  | { requestId: string; modelId: string; status: typeof QueueStatus.InProgress; logs: LogEntry[] }
  | { requestId: string; modelId: string; status: typeof QueueStatus.Completed; outcome: RequestOutcome };

export interface RequestsClientOptions {
  /** Task queue of the request workflows (the control queue). */
  taskQueue: string;
  registry: ModelRegistry;
  webhook: { scheduleMs: number[]; attemptTimeoutMs: number };
}

/**
 * The queue's operations on top of a Temporal client: one workflow per request, workflow id = request id.
 * State comes from `describe` (memo, pending activity, heartbeat logs) so a status poll needs no worker.
 */
export class RequestsClient {
  constructor(
    private readonly client: Client,
    private readonly options: RequestsClientOptions,
  ) {}

  /** Starts the request's workflow and returns its id. The model must be in the registry. */
  async submit(req: SubmitRequest): Promise<string> {
    const model = this.options.registry.get(req.modelId);
    if (!model) throw new Error(`unknown model ${req.modelId}`);
    const requestId = randomUUID();
    const input: InferenceRequestInput = {
      requestId,
      owner: req.owner,
      modelId: req.modelId,
      input: req.input,
      webhookUrl: req.webhookUrl,
      model: {
        taskQueue: modelTaskQueue(this.options.taskQueue, model.id),
        timeoutSeconds: model.timeoutSeconds,
        heartbeatTimeoutSeconds: model.heartbeatTimeoutSeconds,
        maxAttempts: model.maxAttempts,
      },
      webhook: this.options.webhook,
    };
    await this.client.workflow.start(inferenceRequest, {
      workflowId: requestId,
      taskQueue: this.options.taskQueue,
      args: [input],
      memo: { owner: req.owner, modelId: req.modelId } satisfies RequestMemo,
    });
    return requestId;
  }

  /**
   * The request's state, or undefined when there is no such request for this owner
   * (another owner's request is reported as missing, never as forbidden).
   */
  async get(requestId: string, owner: string): Promise<RequestView | undefined> {
    const handle = this.client.workflow.getHandle(requestId);
    let description;
    try {
      description = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
    const memo = description.memo as Partial<RequestMemo> | undefined;
    if (description.type !== inferenceRequest.name || memo?.owner !== owner || !memo.modelId) return undefined;
    const base = { requestId, modelId: memo.modelId };

    switch (description.status.name) {
      case 'RUNNING':
        break;
      case 'COMPLETED':
        return { ...base, status: QueueStatus.Completed, outcome: await handle.result() };
      case 'CANCELLED':
        return { ...base, status: QueueStatus.Completed, outcome: cancelledOutcome() };
      default:
        return { ...base, status: QueueStatus.Completed, outcome: abnormalOutcome(description.status.name) };
    }

    const inference = description.raw.pendingActivities?.find((a) => a.activityType?.name === 'runInference');
    if (inference) {
      const logs = this.heartbeatLogs(inference.heartbeatDetails?.payloads ?? []);
      const started = inference.state !== PendingState.PENDING_ACTIVITY_STATE_SCHEDULED || (inference.attempt ?? 1) > 1;
      return started
        ? { ...base, status: QueueStatus.InProgress, logs }
        : { ...base, status: QueueStatus.InQueue, queuePosition: 0, logs };
    }
    // No inference pending: either not scheduled yet or just finished. Only the workflow knows which.
    const progress: RequestProgress = await handle.query(progressQuery).catch(() => ({ status: QueueStatus.InQueue }));
    if (progress.status === QueueStatus.Completed && progress.outcome) {
      return { ...base, status: QueueStatus.Completed, outcome: progress.outcome };
    }
    return { ...base, status: QueueStatus.InQueue, queuePosition: 0, logs: [] };
  }

  /** Asks the request to stop: a queued run never starts, a running one has its activity cancelled. */
  async cancel(requestId: string): Promise<void> {
    await this.client.workflow.getHandle(requestId).cancel();
  }

  private heartbeatLogs(payloads: temporal.api.common.v1.IPayload[]): LogEntry[] {
    const first = payloads[0];
    if (!first) return [];
    try {
      const details = this.client.options.loadedDataConverter.payloadConverter.fromPayload<InferenceHeartbeat>(first);
      return Array.isArray(details?.logs) ? details.logs : [];
    } catch {
      return [];
    }
  }
}

/** Outcome of a workflow that ended outside our own code paths (terminated or timed out by an operator). */
function abnormalOutcome(status: string): RequestOutcome {
  const message = `Request ended abnormally (workflow ${status.toLowerCase()})`;
  return {
    status: 'ERROR',
    httpStatus: 500,
    errorType: 'runner_error',
    message,
    detail: message,
    logs: [],
    metrics: { inference_time: null },
  };
}
