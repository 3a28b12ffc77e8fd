import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { InferenceHeartbeat } from '../activities';
import { fromRawPayload } from '../codec';
import { admissionLimit, type ModelRegistry } from '../models/registry';
import {
  INFERENCE_REQUEST_WORKFLOW_TYPE,
  outcomeOf,
  progressQuery,
  type RequestProgress,
  type RequestResult,
} from '../workflows/inference-request/messages';
import { cancelledOutcome } from '../workflows/inference-request/outcomes';
import { RequestErrorType } from '../workflows/shared/errors';
import { QueueStatus, type LogEntry, type RequestOutcome } from '../workflows/shared/request';
import type { AdmissionClient } from './admission-client';
import { outcomeFromHistory } from './history-outcome';
import type { RequestView } from './request-view';
import type { TaskQueueLines } from './task-queue-line';

const PendingState = temporal.api.enums.v1.PendingActivityState;

/**
 * How long a status read waits for a query that a worker must answer (a request between two steps), or for the
 * history it reads instead. With no worker up, the read answers from what `describe` told rather than hang.
 */
const QUERY_DEADLINE_MS = 2_000;

/** What the workflow memo carries so the API can authorise a request without asking a worker. */
export interface RequestMemo {
  owner: string;
  modelId: string;
}

/** A read of a request: its view (undefined = no such request for this owner), and whether it can still change. */
export interface RequestRead {
  view: RequestView | undefined;
  closed: boolean;
}

/**
 * Reads a request's state from Temporal: `describe` (memo, pending activity, heartbeat logs), so a status poll needs
 * no worker; the place in its model's line from the admission workflow or from visibility.
 */
export class RequestReader {
  constructor(
    private readonly client: Client,
    private readonly registry: ModelRegistry,
    private readonly admission: AdmissionClient,
    /** Counts of the task-queue lines; undefined without our search attributes, which they are counted by. */
    private readonly lines: TaskQueueLines | undefined,
  ) {}

  /** The request straight from Temporal, and whether the workflow has closed (the view can no longer change). */
  async read(requestId: string, owner: string): Promise<RequestRead> {
    const handle = this.client.workflow.getHandle(requestId);
    let description;
    try {
      description = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { view: undefined, closed: false };
      throw err;
    }
    const memo = description.memo as Partial<RequestMemo> | undefined;
    if (description.type !== INFERENCE_REQUEST_WORKFLOW_TYPE || memo?.owner !== owner || !memo.modelId) {
      return { view: undefined, closed: false };
    }
    const closed = description.status.name !== 'RUNNING';
    return { view: await this.viewOf(requestId, memo.modelId, owner, description), closed };
  }

  /**
   * A poll's re-read of a request in flight, as cheap as what was known allows: a running request whose logs nobody
   * shows cannot change unseen (its end comes through the view cache's long poll), and a request waiting for a slot
   * of an admission workflow needs only its place, which one query answers for all the pollers of its model. A
   * position never goes up from one read to the next (a count from visibility can, for a moment).
   */
  async reread(requestId: string, owner: string, previous: RequestView, logs: boolean): Promise<RequestRead> {
    if (previous.status === QueueStatus.InProgress && !logs) return { view: previous, closed: false };
    const model = this.registry.get(previous.modelId);
    if (previous.status === QueueStatus.InQueue && model && admissionLimit(model) !== undefined) {
      const place = await this.admission.place(model.id, requestId).catch(() => undefined);
      if (place?.state === 'waiting') {
        return {
          view: { ...previous, queuePosition: Math.min(place.position, previous.queuePosition) },
          closed: false,
        };
      }
      // The queue knows nothing of it while it hands over to its next run (about a second under load): the last
      // position stands, rather than a 0 that would then jump back up. A request that ends meanwhile is seen by the
      // view cache's long poll; one admitted meanwhile answers `admitted` to the next read.
      if (place?.state === 'unknown') return { view: previous, closed: false };
    }
    const next = await this.read(requestId, owner);
    if (next.view?.status === QueueStatus.InQueue && previous.status === QueueStatus.InQueue) {
      next.view.queuePosition = Math.min(next.view.queuePosition, previous.queuePosition);
    }
    return next;
  }

  private async viewOf(
    requestId: string,
    modelId: string,
    owner: string,
    description: WorkflowExecutionDescription,
  ): Promise<RequestView> {
    const handle = this.client.workflow.getHandle(requestId, description.runId);
    const base = { requestId, modelId };
    switch (description.status.name) {
      case 'RUNNING':
        break;
      case 'COMPLETED':
        return { ...base, status: QueueStatus.Completed, outcome: outcomeOf((await handle.result()) as RequestResult) };
      case 'CANCELLED':
        return { ...base, status: QueueStatus.Completed, outcome: cancelledOutcome() };
      default:
        return { ...base, status: QueueStatus.Completed, outcome: abnormalOutcome(description.status.name) };
    }

    const pending = description.raw.pendingActivities ?? [];
    const inference = pending.find((a) => a.activityType?.name === 'runInference');
    if (inference) {
      const logs = await this.heartbeatLogs(inference.heartbeatDetails?.payloads ?? []);
      const started = inference.state !== PendingState.PENDING_ACTIVITY_STATE_SCHEDULED || (inference.attempt ?? 1) > 1;
      if (started) return { ...base, status: QueueStatus.InProgress, logs };
      return {
        ...base,
        status: QueueStatus.InQueue,
        queuePosition: await this.positionOf(modelId, owner, requestId, description),
        logs,
      };
    }
    // No inference pending: waiting for a slot (models with a limit), about to run, or finished (sending its webhook).
    const finished = pending.some((a) => a.activityType?.name === 'deliverWebhook');
    const model = this.registry.get(modelId);
    if (!finished && model && admissionLimit(model) !== undefined) {
      const place = await this.admission.place(model.id, requestId).catch(() => undefined);
      if (place?.state === 'waiting') {
        return { ...base, status: QueueStatus.InQueue, queuePosition: place.position, logs: [] };
      }
    }
    // A run that has ended while a workflow task is pending: the task may hold the webhook's first attempt as a local
    // activity (InferenceRequestInput.firstWebhookAttemptLocal), and a query waits for the task; the history tells.
    if (!finished && description.raw.pendingWorkflowTask) {
      // Bounded like the query: a read must not hang on a Temporal server that is away (the query below then tells).
      const outcome = await this.client
        .withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
          outcomeFromHistory(handle, this.client.options.loadedDataConverter),
        )
        .catch(() => undefined);
      if (outcome) return { ...base, status: QueueStatus.Completed, outcome };
    }
    // Only the workflow knows whether it is about to run or has just finished.
    const progress: RequestProgress = await this.client
      .withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(progressQuery))
      .catch(() => ({ status: QueueStatus.InQueue }));
    if (progress.status === QueueStatus.Completed && progress.outcome) {
      return { ...base, status: QueueStatus.Completed, outcome: progress.outcome };
    }
    // Not scheduled yet (its workflow's first task has not run, which a burst of submits can delay by seconds): in
    // the task-queue design it is in its owner's line all the same, behind those submitted before it.
    return {
      ...base,
      status: QueueStatus.InQueue,
      queuePosition: await this.positionOf(modelId, owner, requestId, description),
      logs: [],
    };
  }

  /**
   * The position of a run waiting in its model's task queue: the requests ahead of it in its owner's line (see
   * {@link TaskQueueLines.position}). 0 when there is nothing to count by, or visibility does not answer.
   */
  private async positionOf(
    modelId: string,
    owner: string,
    requestId: string,
    description: WorkflowExecutionDescription,
  ): Promise<number> {
    const model = this.registry.get(modelId);
    const lines = this.lines;
    if (!lines || !model || admissionLimit(model) !== undefined) return 0;
    return lines.position(modelId, owner, requestId, description.startTime).catch(() => 0);
  }

  private async heartbeatLogs(payloads: temporal.api.common.v1.IPayload[]): Promise<LogEntry[]> {
    const first = payloads[0];
    if (!first) return [];
    try {
      // Heartbeat details from `describe` come as stored: through the codecs (decryption) first.
      const details = await fromRawPayload<InferenceHeartbeat>(this.client.options.loadedDataConverter, first);
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
    errorType: RequestErrorType.RunnerError,
    message,
    detail: message,
    logs: [],
    metrics: { inference_time: null },
  };
}
