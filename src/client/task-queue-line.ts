import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { Priority } from '@temporalio/common';
import { QueuePriority } from '../workflows/admission-queue/messages';
import { INFERENCE_REQUEST_WORKFLOW_TYPE } from '../workflows/inference-request/messages';
import { FalModelId, FalOwner, FalState, FalStateValue } from '../workflows/shared/search-attributes';

/**
 * Temporal's priority keys (1 = first, 5 = last, 3 when unset) for `x-fal-queue-priority`: a task of a lower key is
 * always dispatched before one of a higher key, whatever their fairness keys.
 */
export const PRIORITY_KEYS: Readonly<Record<QueuePriority, number>> = {
  [QueuePriority.Normal]: 3,
  [QueuePriority.Low]: 5,
};

/** The priority a request's run waits with in its model's task queue: its priority, and its owner's share. */
export function runPriority(priority: QueuePriority, owner: string, weight: number): Priority {
  return { priorityKey: PRIORITY_KEYS[priority], fairnessKey: owner, fairnessWeight: weight };
}

/**
 * How long a model's count of waiting requests (plus the submits let in on it since) is reused for submits that set no
 * `fal_max_queue_length` of their own. A count is O(line) work for visibility (200 ms for 30,000 waiting on the dev
 * server's SQLite, where counting on every submit near the limit brought submits down from 90 to 11 per second), so
 * it is asked for at most once a second, more rarely far from the limit; a line that seems full is counted again
 * before a submit is refused, at most ten times a second.
 */
const WAITING_COUNT_MAX_AGE = { farFromLimit: 5_000, belowLimit: 1_000, atLimit: 100 } as const;
const FAR_FROM_LIMIT = 0.5;

/** How long a count that puts the line at `estimate` may be reused against `limit` (see WAITING_COUNT_MAX_AGE). */
function reuseAge(estimate: number, limit: number): number {
  if (estimate >= limit) return WAITING_COUNT_MAX_AGE.atLimit;
  return estimate < limit * FAR_FROM_LIMIT ? WAITING_COUNT_MAX_AGE.farFromLimit : WAITING_COUNT_MAX_AGE.belowLimit;
}
/** How long a position read waits for visibility to record the request before counting the ones ahead of it. */
const CATCH_UP_MS = 3_000;
const CATCH_UP_POLL_MS = 100;
/**
 * A request's position is counted again once its last count is older than this per place (capped): one far back
 * changes slowly and is counted rarely, one near the front is counted on every read. Without it, pollers of a long
 * line cost visibility one O(line) count each per poll, which starved the dev server at 30,000 waiting.
 */
const POSITION_AGE_PER_PLACE_MS = 5;
const MAX_POSITION_AGE_MS = 30_000;
/** Positions remembered per API process; the oldest are forgotten first (and counted again when read). */
const MAX_REMEMBERED_POSITIONS = 100_000;

/**
 * The lines of requests waiting in their models' task queues, counted from Temporal's visibility store: a request
 * waits while its workflow runs with FalState `IN_QUEUE` (its runner reports the start, which moves it to
 * `DISPATCHED`). The counts are as fresh as visibility: on the dev server a few milliseconds behind, on a cluster
 * with SQL or Elasticsearch visibility up to about a second (docs/queue.md).
 */
export class TaskQueueLines {
  private readonly waitingCounts = new Map<string, { at: number; count: Promise<number>; since: number }>();
  private readonly positions = new Map<string, { at: number; position: number }>();

  constructor(
    private readonly client: Client,
    /** The control task queue: requests of other deployments sharing the namespace are not counted. */
    private readonly taskQueue: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Requests of the model no runner has taken yet. `limit` is the longest line the caller accepts: a recent count
   * plus the submits let in on it serves (see {@link WAITING_COUNT_MAX_AGE}), and `fresh` always asks visibility.
   */
  async waiting(modelId: string, { limit, fresh }: { limit: number; fresh: boolean }): Promise<number> {
    const cached = this.waitingCounts.get(modelId);
    const count = !fresh && cached ? await cached.count.catch(() => undefined) : undefined;
    if (cached && count !== undefined) {
      // The submits this process let in on the reused count are in the line too.
      const estimate = count + cached.since;
      if (this.now() - cached.at < reuseAge(estimate, limit)) {
        // Below the limit the submit is let in on it; at the limit it is refused without another count.
        if (estimate < limit) cached.since++;
        return estimate;
      }
    }
    const counted = this.count(this.waitingQuery(modelId));
    // The submit asking now is let in on it too, unless the count refuses it (then the estimate errs high).
    this.waitingCounts.set(modelId, { at: this.now(), count: counted, since: 1 });
    return counted;
  }

  /**
   * Requests ahead of this one in its owner's line: of the same model and owner, submitted before it, not taken by a
   * runner yet. Within one owner and one priority the task queue starts runs in submit order, so this is the
   * request's position up to the lag of visibility (docs/queue.md says what else it does not see).
   */
  async ahead(modelId: string, owner: string, submittedAt: Date): Promise<number> {
    const query = `${this.waitingQuery(modelId)} AND ${FalOwner.name} = ${quote(owner)} AND StartTime < ${quote(submittedAt.toISOString())}`;
    return this.count(query);
  }

  /**
   * The request's position: {@link ahead}, counted once visibility has recorded the request itself (waiting up to
   * {@link CATCH_UP_MS} for it), so that a count that lags the burst it came in cannot place it too far forward.
   */
  async position(modelId: string, owner: string, requestId: string, submittedAt: Date): Promise<number> {
    const known = this.positions.get(requestId);
    if (known && this.now() - known.at < Math.min(MAX_POSITION_AGE_MS, known.position * POSITION_AGE_PER_PLACE_MS)) {
      return known.position;
    }
    if (!known) {
      const deadline = this.now() + CATCH_UP_MS;
      while (!(await this.knowsWaiting(modelId, requestId)) && this.now() < deadline) await sleep(CATCH_UP_POLL_MS);
    }
    const position = await this.ahead(modelId, owner, submittedAt);
    this.remember(requestId, position);
    return position;
  }

  private remember(requestId: string, position: number): void {
    this.positions.delete(requestId);
    this.positions.set(requestId, { at: this.now(), position });
    if (this.positions.size <= MAX_REMEMBERED_POSITIONS) return;
    // Maps iterate in insertion order: the first entries are the ones read least recently.
    for (const id of [...this.positions.keys()].slice(0, MAX_REMEMBERED_POSITIONS / 10)) this.positions.delete(id);
  }

  /**
   * Whether visibility has recorded this request as waiting. Visibility writes its records in order, so until it
   * has this one, those ahead of it may be missing too, and {@link ahead} would count too few: under a burst of
   * submits on the dev server (one SQLite connection for everything) that lag reached seconds.
   */
  async knowsWaiting(modelId: string, requestId: string): Promise<boolean> {
    return (await this.count(`${this.waitingQuery(modelId)} AND WorkflowId = ${quote(requestId)}`)) > 0;
  }

  private waitingQuery(modelId: string): string {
    return [
      `WorkflowType = ${quote(INFERENCE_REQUEST_WORKFLOW_TYPE)}`,
      `TaskQueue = ${quote(this.taskQueue)}`,
      `ExecutionStatus = 'Running'`,
      `${FalModelId.name} = ${quote(modelId)}`,
      `${FalState.name} = ${quote(FalStateValue.InQueue)}`,
    ].join(' AND ');
  }

  private async count(query: string): Promise<number> {
    return (await this.client.workflow.count(query)).count;
  }
}

/** A string literal of Temporal's list-filter language (its parser takes backslash escapes). */
function quote(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
