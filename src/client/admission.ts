import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  admissionQueue,
  admissionWorkflowId,
  enqueueUpdate,
  queuePlaceQuery,
  releaseSignal,
  type EnqueueEntry,
  type EnqueueResult,
  type QueuePlace,
} from '../workflows';

/** A model as its admission queue needs it. */
export interface AdmissionModel {
  id: string;
  /** Runs in progress at once across all runners. */
  capacity: number;
  /** Most requests that may wait. */
  queueLimit: number;
}

/** Thrown when a model's queue is as long as the submit (or the model) allows; nothing was started. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(
    readonly modelId: string,
    readonly waiting: number,
    readonly limit: number,
  ) {
    super(`The queue of ${modelId} is full: ${waiting} requests are waiting, the limit is ${limit}`);
  }
}

/**
 * Updates one API process keeps in flight per model queue. Temporal admits 10 in-flight updates per workflow by
 * default (`history.maxInFlightUpdates`) and the client backs off a full second when refused, so submits that arrive
 * meanwhile wait and go together in the next update.
 */
const MAX_UPDATES_IN_FLIGHT = 2;
/** Entries per update, which keeps each history event small. */
const MAX_BATCH = 200;

interface Pending {
  entry: EnqueueEntry;
  resolve: (result: EnqueueResult) => void;
  reject: (err: unknown) => void;
}

/**
 * The API's side of the admission queues ({@link admissionQueue}, one workflow per model with a concurrency limit):
 * enqueue (batched per model), give a place back, and read a request's place.
 */
export class AdmissionClient {
  private readonly batchers = new Map<string, { pending: Pending[]; inFlight: number }>();

  constructor(
    private readonly client: Client,
    /** The control task queue; the queue workflows run there and their ids include it. */
    private readonly taskQueue: string,
  ) {}

  workflowId(modelId: string): string {
    return admissionWorkflowId(this.taskQueue, modelId);
  }

  /**
   * Places a request in its model's queue, starting the queue workflow if it is not running.
   * @throws {@link QueueFullError} when the queue is as long as `maxQueueLength` (or the model's bound) allows.
   */
  async enqueue(
    model: AdmissionModel,
    entry: EnqueueEntry,
  ): Promise<{ admitted: true } | { admitted: false; position: number }> {
    const batcher = this.batchers.get(model.id) ?? { pending: [], inFlight: 0 };
    this.batchers.set(model.id, batcher);
    const result = await new Promise<EnqueueResult>((resolve, reject) => {
      batcher.pending.push({ entry, resolve, reject });
      this.flush(model, batcher);
    });
    if ('refused' in result) throw new QueueFullError(model.id, result.waiting, result.limit);
    return result;
  }

  /** Gives the request's place or slot back (a submit that could not start its workflow). */
  async release(modelId: string, requestId: string): Promise<void> {
    await this.client.workflow.getHandle(this.workflowId(modelId)).signal(releaseSignal, requestId);
  }

  /** Where the request stands in its model's queue; one query, answered by the control worker. */
  async place(modelId: string, requestId: string): Promise<QueuePlace> {
    try {
      return await this.client.workflow.getHandle(this.workflowId(modelId)).query(queuePlaceQuery, requestId);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { state: 'unknown' };
      throw err;
    }
  }

  private flush(model: AdmissionModel, batcher: { pending: Pending[]; inFlight: number }): void {
    while (batcher.inFlight < MAX_UPDATES_IN_FLIGHT && batcher.pending.length > 0) {
      const batch = batcher.pending.splice(0, MAX_BATCH);
      batcher.inFlight++;
      this.send(model, batch)
        .then(
          (results) => batch.forEach((p, i) => p.resolve(results[i]!)),
          (err: unknown) => batch.forEach((p) => p.reject(err)),
        )
        .finally(() => {
          batcher.inFlight--;
          this.flush(model, batcher);
        });
    }
  }

  private async send(model: AdmissionModel, batch: Pending[]): Promise<EnqueueResult[]> {
    const results = await this.client.workflow.executeUpdateWithStart(enqueueUpdate, {
      args: [{ capacity: model.capacity, queueLimit: model.queueLimit, entries: batch.map((p) => p.entry) }],
      startWorkflowOperation: new WithStartWorkflowOperation(admissionQueue, {
        workflowId: this.workflowId(model.id),
        taskQueue: this.taskQueue,
        args: [{ modelId: model.id, capacity: model.capacity }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    if (results.length !== batch.length)
      throw new Error(`admission queue answered ${results.length} of ${batch.length}`);
    return results;
  }
}
