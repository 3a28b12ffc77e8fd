import { createHash, randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { admissionLimit, modelTaskQueue, ownerWeight, type ModelRegistry } from '../models/registry';
import { QueuePriority } from '../workflows/admission-queue/messages';
import { INFERENCE_REQUEST_WORKFLOW_TYPE, type InferenceRequestInput } from '../workflows/inference-request/messages';
import { AdmissionClient, QueueFullError } from './admission-client';
import { RequestReader, type RequestMemo } from './request-reader';
import type { RequestView } from './request-view';
import { TaskQueueLines, runPriority } from './task-queue-line';
import { ViewCache, type ViewCacheOptions } from './view-cache';
import type { QueueMetrics } from '../observability/metrics';
import { initialRequestSearchAttributes } from '../observability/search-attributes';
import { withLinkedAbortSignal } from '../temporal/abort';

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
  /** Counts accepted submits (`fal_queue_requests_submitted_total`), and those started eagerly. */
  metrics?: Pick<QueueMetrics, 'submitted' | 'startedEagerly'>;
  /** Answer status reads from a {@link ViewCache}; omitted = every read goes to Temporal. */
  viewCache?: Omit<ViewCacheOptions, 'onError'> & { onError?: ViewCacheOptions['onError'] };
  /**
   * Ask for Temporal's eager workflow start: the server hands the request's first workflow task back with the start,
   * to a control worker of this process, instead of through matching. Only for a client on the `NativeConnection` of
   * a worker that polls `taskQueue` (the SDK refuses the start otherwise); when that worker has no free slot, the
   * task is dispatched as usual.
   */
  eagerStart?: boolean;
}

/**
 * The queue's operations on top of a Temporal client: one workflow per request, workflow id = request id. Status
 * reads are {@link RequestReader}'s.
 */
export class RequestsClient {
  private readonly admission: AdmissionClient;
  /** Counts of the task-queue lines; undefined without our search attributes, which they are counted by. */
  private readonly lines?: TaskQueueLines;
  private readonly views?: ViewCache;
  private readonly lifetime = new AbortController();
  private readonly reader: RequestReader;

  constructor(
    private readonly client: Client,
    private readonly options: RequestsClientOptions,
  ) {
    this.admission = new AdmissionClient(client, options.taskQueue);
    if (options.searchAttributes) this.lines = new TaskQueueLines(client, options.taskQueue);
    this.reader = new RequestReader(client, options.registry, this.admission, this.lines);
    if (options.viewCache) {
      // Aborted on close, so no read of the cache is left in flight (or in a retry) when the connection closes.
      const inLifetime = <T>(call: () => Promise<T>) => withLinkedAbortSignal(client, this.lifetime.signal, call);
      this.views = new ViewCache(
        {
          read: (requestId, owner) => inLifetime(() => this.reader.read(requestId, owner)),
          reread: (requestId, owner, previous, logs) =>
            inLifetime(() => this.reader.reread(requestId, owner, previous, logs)),
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
      deliveryLogInResult: true,
      completedStateAtClose: true,
      firstWebhookAttemptLocal: true,
    };
    let eagerlyStarted: boolean;
    try {
      ({ eagerlyStarted } = await this.client.workflow.start(INFERENCE_REQUEST_WORKFLOW_TYPE, {
        workflowId: requestId,
        taskQueue: this.options.taskQueue,
        args: [input],
        requestEagerStart: this.options.eagerStart,
        memo: { owner: req.owner, modelId: req.modelId } satisfies RequestMemo,
        ...(this.options.searchAttributes && {
          typedSearchAttributes: initialRequestSearchAttributes(req.owner, req.modelId, place?.admitted ?? false),
        }),
        // A repeated key finds the request it named: running (use it) or finished (refuse a second run).
        ...(req.idempotencyKey && {
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        }),
      }));
    } catch (err) {
      // The place taken above belongs to no workflow (or to the finished request a repeated key names).
      if (place) await this.admission.release(model.id, requestId).catch(() => undefined);
      if (req.idempotencyKey && err instanceof WorkflowExecutionAlreadyStartedError) {
        return { requestId, queuePosition: 0 };
      }
      throw err;
    }
    this.options.metrics?.submitted.inc({ model: model.id });
    if (eagerlyStarted) this.options.metrics?.startedEagerly.inc({ model: model.id });
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
    return this.views ? this.views.get(requestId, owner, logs) : (await this.reader.read(requestId, owner)).view;
  }

  /** Stops the view cache's background reads and waits for those in flight (the API is shutting down). */
  async close(): Promise<void> {
    this.lifetime.abort();
    await this.views?.close();
  }

  /** Asks the request to stop: a queued run never starts, a running one has its activity cancelled. */
  async cancel(requestId: string): Promise<void> {
    await this.client.workflow.getHandle(requestId).cancel();
    this.views?.invalidate(requestId);
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
