import { createHash, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { InferenceHeartbeat } from '../activities';
import { fromRawPayload } from '../codec';
import { admissionLimit, modelTaskQueue, ownerWeight, type ModelRegistry } from '../models/registry';
import { QueuePriority } from '../workflows/admission-queue/messages';
import {
  INFERENCE_REQUEST_WORKFLOW_TYPE,
  progressQuery,
  type InferenceRequestInput,
  type RequestProgress,
} from '../workflows/inference-request/messages';
import { cancelledOutcome } from '../workflows/inference-request/outcomes';
import { RequestErrorType } from '../workflows/shared/errors';
import { QueueStatus, type LogEntry, type RequestOutcome } from '../workflows/shared/request';
import { AdmissionClient, QueueFullError } from './admission-client';
import type { RequestView } from './request-view';
import { TaskQueueLines, runPriority } from './task-queue-line';
import { ViewCache, type ViewCacheOptions } from './view-cache';
import type { QueueMetrics } from '../observability/metrics';
import { initialRequestSearchAttributes } from '../observability/search-attributes';

const PendingState = temporal.api.enums.v1.PendingActivityState;

/**
 * How long a status read waits for a query that a worker must answer (a request between two steps). With no worker
 * up, the read answers from what `describe` told rather than hang.
 */
const QUERY_DEADLINE_MS = 2_000;

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
  /**
   * The client's `Idempotency-Key`: a submit repeated with the same key (same owner, same model)
   * returns the first one's request id instead of starting a second run, for as long as Temporal
   * retains the first request.
   */
  idempotencyKey?: string;
  /** Lifetime of the files the request stores (fal's `expiration_duration_seconds`); undefined = the default. */
  fileExpiresInSeconds?: number;
  /** `x-fal-queue-priority`: `low` starts only when no `normal` request of the model is waiting. */
  priority?: QueuePriority;
  /** `x-fal-request-timeout`: seconds the request may wait to start; then it ends with a 504 timeout. */
  startTimeoutSeconds?: number;
  /** `fal_max_queue_length`: refuse the submit ({@link QueueFullError}) when this many requests already wait. */
  maxQueueLength?: number;
  /** `x-fal-no-retry`: a run that fails is not attempted again. */
  noRetry?: boolean;
}

/** What a submit answers with. */
export interface SubmitResult {
  requestId: string;
  /** Requests ahead of it in its model's queue (0 when it got a slot at once). */
  queuePosition: number;
}

export type { RequestView } from './request-view';

export interface RequestsClientOptions {
  /** Task queue of the request workflows (the control queue). */
  taskQueue: string;
  registry: ModelRegistry;
  webhook: InferenceRequestInput['webhook'];
  /** Start requests with the search attributes of `observability/search-attributes.ts` (they must be registered). */
  searchAttributes?: boolean;
  /** Counts accepted submits (`fal_queue_requests_submitted_total`). */
  metrics?: Pick<QueueMetrics, 'submitted'>;
  /** Answer status reads from a {@link ViewCache}; omitted = every read goes to Temporal. */
  viewCache?: Omit<ViewCacheOptions, 'onError'> & { onError?: ViewCacheOptions['onError'] };
}

/**
 * The queue's operations on top of a Temporal client: one workflow per request, workflow id = request id.
 * State comes from `describe` (memo, pending activity, heartbeat logs) so a status poll needs no worker.
 */
export class RequestsClient {
  private readonly admission: AdmissionClient;
  /** Counts of the task-queue lines; undefined without our search attributes, which they are counted by. */
  private readonly lines?: TaskQueueLines;
  private readonly views?: ViewCache;
  private readonly lifetime = new AbortController();

  constructor(
    private readonly client: Client,
    private readonly options: RequestsClientOptions,
  ) {
    this.admission = new AdmissionClient(client, options.taskQueue);
    if (options.searchAttributes) this.lines = new TaskQueueLines(client, options.taskQueue);
    if (options.viewCache) {
      // Aborted on close, so no read of the cache is left in flight (or in a retry) when the connection closes. One
      // signal for all of them: as many listeners as calls in flight.
      setMaxListeners(0, this.lifetime.signal);
      const inLifetime = <T>(call: () => Promise<T>) => client.withAbortSignal(this.lifetime.signal, call);
      this.views = new ViewCache(
        {
          read: (requestId, owner) => inLifetime(() => this.read(requestId, owner)),
          reread: (requestId, owner, previous, logs) => inLifetime(() => this.reread(requestId, owner, previous, logs)),
          waitForClose: (requestId, signal) =>
            client.withAbortSignal(signal, () => client.workflow.getHandle(requestId).result()),
        },
        options.viewCache,
      );
    }
  }

  /**
   * Starts the request's workflow. A model with an admission workflow gives the request a place there first; any
   * other model's requests wait in its task queue, whose line is checked against `maxQueueLength` first. The model
   * must be in the registry.
   * @throws {@link QueueFullError} when the model's queue is full; then nothing was started.
   */
  async submit(req: SubmitRequest): Promise<SubmitResult> {
    const model = this.options.registry.get(req.modelId);
    if (!model) throw new Error(`unknown model ${req.modelId}`);
    const requestId = req.idempotencyKey
      ? idempotentRequestId(req.owner, req.modelId, req.idempotencyKey)
      : randomUUID();
    const priority = req.priority ?? QueuePriority.Normal;
    const limit = admissionLimit(model);
    const place =
      limit === undefined
        ? undefined
        : await this.admission.enqueue(
            { id: model.id, capacity: limit, queueLimit: model.maxQueueLength },
            { requestId, priority, maxQueueLength: req.maxQueueLength },
          );
    if (!place) await this.checkLine(model.id, model.maxQueueLength, req.maxQueueLength);
    const input: InferenceRequestInput = {
      requestId,
      owner: req.owner,
      modelId: req.modelId,
      input: req.input,
      webhookUrl: req.webhookUrl,
      fileExpiresInSeconds: req.fileExpiresInSeconds,
      model: {
        taskQueue: modelTaskQueue(this.options.taskQueue, model.id),
        timeoutSeconds: model.timeoutSeconds,
        heartbeatTimeoutSeconds: model.heartbeatTimeoutSeconds,
        maxAttempts: req.noRetry ? 1 : model.maxAttempts,
      },
      webhook: this.options.webhook,
      admission: place && { queueWorkflowId: this.admission.workflowId(model.id), admitted: place.admitted },
      queueing: place
        ? undefined
        : { priority: runPriority(priority, req.owner, ownerWeight(this.options.registry.file, model, req.owner)) },
      startTimeoutSeconds: req.startTimeoutSeconds,
    };
    try {
      await this.client.workflow.start(INFERENCE_REQUEST_WORKFLOW_TYPE, {
        workflowId: requestId,
        taskQueue: this.options.taskQueue,
        args: [input],
        memo: { owner: req.owner, modelId: req.modelId } satisfies RequestMemo,
        ...(this.options.searchAttributes && {
          typedSearchAttributes: initialRequestSearchAttributes(req.owner, req.modelId, place?.admitted ?? false),
        }),
        // A repeated key finds the request it named: running (use it) or finished (refuse a second run).
        ...(req.idempotencyKey && {
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        }),
      });
    } catch (err) {
      // The place taken above belongs to no workflow (or to the finished request a repeated key names).
      if (place) await this.admission.release(model.id, requestId).catch(() => undefined);
      if (req.idempotencyKey && err instanceof WorkflowExecutionAlreadyStartedError) {
        return { requestId, queuePosition: 0 };
      }
      throw err;
    }
    this.options.metrics?.submitted.inc({ model: model.id });
    return { requestId, queuePosition: place && !place.admitted ? place.position : 0 };
  }

  /**
   * Refuses a submit when the model's task-queue line is as long as the model or the submit allows. The count comes
   * from visibility (see {@link TaskQueueLines}): submits racing each other, and visibility's lag, can let a line grow
   * a little past the limit (docs/queue.md). Without our search attributes there is nothing to count by, and only
   * the runners bound the line.
   */
  private async checkLine(modelId: string, modelLimit: number, submitLimit: number | undefined): Promise<void> {
    if (!this.lines) return;
    const limit = Math.min(modelLimit, submitLimit ?? Infinity);
    const waiting = await this.lines.waiting(modelId, { limit, fresh: submitLimit !== undefined });
    // `fal_max_queue_length=0` asks to run at once; whether a runner is free is not known here, so it is refused only
    // when someone is waiting already.
    if (waiting >= Math.max(limit, 1)) throw new QueueFullError(modelId, waiting, limit);
  }

  /**
   * The request's state, or undefined when there is no such request for this owner
   * (another owner's request is reported as missing, never as forbidden).
   */
  async get(
    requestId: string,
    owner: string,
    { logs = false }: { logs?: boolean } = {},
  ): Promise<RequestView | undefined> {
    return this.views ? this.views.get(requestId, owner, logs) : (await this.read(requestId, owner)).view;
  }

  /** Stops the view cache's background reads and waits for those in flight (the API is shutting down). */
  async close(): Promise<void> {
    this.lifetime.abort();
    await this.views?.close();
  }

  /** {@link get} straight from Temporal, and whether the workflow has closed (the view can no longer change). */
  private async read(requestId: string, owner: string): Promise<{ view: RequestView | undefined; closed: boolean }> {
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
  private async reread(
    requestId: string,
    owner: string,
    previous: RequestView,
    logs: boolean,
  ): Promise<{ view: RequestView | undefined; closed: boolean }> {
    if (previous.status === QueueStatus.InProgress && !logs) return { view: previous, closed: false };
    const model = this.options.registry.get(previous.modelId);
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
        return { ...base, status: QueueStatus.Completed, outcome: (await handle.result()) as RequestOutcome };
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
    const model = this.options.registry.get(modelId);
    if (!finished && model && admissionLimit(model) !== undefined) {
      const place = await this.admission.place(model.id, requestId).catch(() => undefined);
      if (place?.state === 'waiting') {
        return { ...base, status: QueueStatus.InQueue, queuePosition: place.position, logs: [] };
      }
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
    const model = this.options.registry.get(modelId);
    const lines = this.lines;
    if (!lines || !model || admissionLimit(model) !== undefined) return 0;
    return lines.position(modelId, owner, requestId, description.startTime).catch(() => 0);
  }

  /** Asks the request to stop: a queued run never starts, a running one has its activity cancelled. */
  async cancel(requestId: string): Promise<void> {
    await this.client.workflow.getHandle(requestId).cancel();
    this.views?.invalidate(requestId);
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

/** Namespace of the name-based (v5) UUIDs of idempotent requests; any fixed UUID would do. */
const IDEMPOTENCY_NAMESPACE = Buffer.from('6f1c8f3e9b2a4d7c8e5f0a1b2c3d4e5f', 'hex');

/**
 * The request id an `Idempotency-Key` stands for: a UUIDv5 of owner, model and key, so the same key
 * always names the same request and never one of another owner or model.
 */
export function idempotentRequestId(owner: string, modelId: string, key: string): string {
  const name = JSON.stringify([owner, modelId, key]);
  const hash = createHash('sha1').update(IDEMPOTENCY_NAMESPACE).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
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
