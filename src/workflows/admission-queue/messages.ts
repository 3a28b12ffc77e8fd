/**
 * The admission queue workflow's contract: its input and carried state, the update the API enqueues with, the signal
 * requests give their place back with, and the queries of places and stats. Imported by the API, the activities and
 * the workflow; no Node imports.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/** The workflow's type name, so callers can start it without importing workflow code. */
export const ADMISSION_QUEUE_WORKFLOW_TYPE = 'admissionQueue';

/** `x-fal-queue-priority`: a `low` request starts only when no `normal` one of its model is waiting. */
export const QueuePriority = {
  Normal: 'normal',
  Low: 'low',
} as const;
export type QueuePriority = (typeof QueuePriority)[keyof typeof QueuePriority];

/** One submit asking for a place. */
export interface EnqueueEntry {
  requestId: string;
  priority: QueuePriority;
  /** The longest queue this submit accepts (`fal_max_queue_length`), if the client set one. */
  maxQueueLength?: number;
}

/**
 * Submits of one API process, enqueued together: Temporal admits only a few updates in flight per workflow, so the
 * API batches instead of sending one update per submit. Entries are placed in order.
 */
export interface EnqueueBatch {
  /** The model's concurrency limit as the API reads it from the registry; the latest one wins. */
  capacity: number;
  /** The model's own bound on waiting requests (registry `maxQueueLength`). */
  queueLimit: number;
  entries: EnqueueEntry[];
}

/**
 * Per entry: it got a slot at once; or its place (0 = next) among the waiting ones; or it was refused because the
 * queue already held `waiting` requests, as many as the entry's or the model's limit allows.
 */
export type EnqueueResult =
  { admitted: true } | { admitted: false; position: number } | { refused: true; waiting: number; limit: number };

/** Where a request stands in its model's queue, as the status endpoint reports it. */
export type QueuePlace =
  | { state: 'waiting'; position: number }
  /** It holds one of the model's slots: running, or about to. */
  | { state: 'admitted' }
  /** Not (or no longer) known here: finished, or never enqueued. */
  | { state: 'unknown' };

export interface AdmissionStats {
  capacity: number;
  running: number;
  waiting: number;
  waitingLow: number;
}

/** Asks for slots, answering each entry; an entry already known (a repeated submit) gets its current place. */
export const enqueueUpdate = defineUpdate<EnqueueResult[], [EnqueueBatch]>('enqueue');

/** Most entries one {@link enqueueUpdate} may carry (the API sends at most 200): keeps each history event small. */
export const MAX_ENQUEUE_BATCH = 1000;
const MAX_REQUEST_ID_LENGTH = 256;

/**
 * The validator of {@link enqueueUpdate}: a malformed batch (from a buggy or hostile client with access to the
 * namespace) is refused before it is accepted, so it never reaches the queue's state or its history.
 */
export function assertEnqueueBatch(batch: EnqueueBatch): void {
  const isCount = (n: unknown, min: number): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
  if (typeof batch !== 'object' || batch === null) throw new TypeError('enqueue: the batch must be an object');
  if (!isCount(batch.capacity, 1)) throw new TypeError('enqueue: capacity must be an integer of at least 1');
  if (!isCount(batch.queueLimit, 0)) throw new TypeError('enqueue: queueLimit must be a non-negative integer');
  if (!Array.isArray(batch.entries) || batch.entries.length > MAX_ENQUEUE_BATCH) {
    throw new TypeError(`enqueue: entries must be an array of at most ${MAX_ENQUEUE_BATCH}`);
  }
  const priorities: readonly unknown[] = Object.values(QueuePriority);
  for (const entry of batch.entries) {
    if (typeof entry !== 'object' || entry === null) throw new TypeError('enqueue: every entry must be an object');
    const { requestId, priority, maxQueueLength } = entry;
    if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > MAX_REQUEST_ID_LENGTH) {
      throw new TypeError(`enqueue: requestId must be a string of 1 to ${MAX_REQUEST_ID_LENGTH} characters`);
    }
    if (!priorities.includes(priority))
      throw new TypeError(`enqueue: priority must be one of ${priorities.join(', ')}`);
    if (maxQueueLength !== undefined && !isCount(maxQueueLength, 0)) {
      throw new TypeError('enqueue: maxQueueLength must be a non-negative integer when set');
    }
  }
}
/** These requests no longer want their place or their slot: they finished, were cancelled or timed out. */
export const releaseSignal = defineSignal<[string[]]>('release');
/** The places of several requests at once, in the order asked (one query for all the API's pollers of a model). */
export const queuePlacesQuery = defineQuery<QueuePlace[], [string[]]>('places');
export const admissionStatsQuery = defineQuery<AdmissionStats>('stats');

/** A request holding one of the model's slots. */
export interface Holder {
  /** When it was enqueued (workflow time, ms). */
  submittedAt: number;
  /** When the queue next makes sure its workflow still exists (a signal to a missing workflow fails). */
  checkAt?: number;
}

/** Everything the queue knows; carried over to the next run by continue-as-new. */
export interface AdmissionQueueState {
  capacity: number;
  /** Waiting request ids in submit order, per priority. */
  normal: string[];
  low: string[];
  /** When each waiting request was enqueued. */
  submittedAt: Record<string, number>;
  holders: [string, Holder][];
}

export interface AdmissionQueueInput {
  modelId: string;
  capacity: number;
  state?: AdmissionQueueState;
  /**
   * History length at which the queue continues as new, carrying its state.
   * @default 5000
   */
  continueAsNewAfterEvents?: number;
  /** Overrides of how the queue checks its slot holders (tests use short ones). */
  timing?: Partial<AdmissionTiming>;
}

/** How the queue makes sure every slot is held by a live request. */
export interface AdmissionTiming {
  /**
   * How often it checks that a slot holder's workflow still exists: one admitted at submit (no grant is sent to it)
   * may belong to a submit that died before starting its workflow, and an operator may terminate a running request
   * (which then never gives its slot back). A signal to a missing or closed workflow fails, and the slot comes back.
   * @default 60_000
   */
  checkHoldersEveryMs: number;
  /**
   * A grant that did not reach its request (its workflow is being started right now) is sent again this soon...
   * @default 1_000
   */
  grantRetryMs: number;
  /**
   * ...unless the request was submitted this long ago: then its workflow is gone (or never came) and the slot is freed.
   * @default 30_000
   */
  giveUpAfterMs: number;
}

/** Workflow id of a model's admission queue. The task queue is part of it so deployments sharing a namespace stay apart. */
export function admissionWorkflowId(taskQueue: string, modelId: string): string {
  return `admission/${taskQueue}/${modelId}`;
}
