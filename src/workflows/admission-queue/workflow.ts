import {
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  proxyLocalActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  QueuePriority,
  admissionStatsQuery,
  assertEnqueueBatch,
  enqueueUpdate,
  queuePlacesQuery,
  releaseSignal,
  type AdmissionQueueInput,
  type AdmissionTiming,
  type EnqueueEntry,
  type EnqueueResult,
  type Holder,
  type QueuePlace,
} from './messages';

const DEFAULT_TIMING: AdmissionTiming = { checkHoldersEveryMs: 60_000, grantRetryMs: 1_000, giveUpAfterMs: 30_000 };

/** Checks due within this much of the one that woke the checker are done at the same time. */
const CHECK_SLACK_MS = 5_000;
/** Updates one run takes before it continues as new (Temporal's own limit is 2000 by default). */
const MAX_UPDATES_PER_RUN = 1000;

/**
 * The admission queue of one model: the model's concurrency limit, its waiting requests in order (`normal` before
 * `low`, first come first served within a priority) and the requests holding a slot. Submits enqueue through an update
 * (answered with the position, or refused when the queue is full); request workflows give their place or slot back
 * with {@link releaseSignal}; the queue tells a waiting request it may start with the request's `admitted` signal (sent by the `grantSlots` activity).
 *
 * Temporal is the only store: the state lives in this workflow and moves to a fresh run (continue-as-new) before the
 * history grows long.
 */
export async function admissionQueue(input: AdmissionQueueInput): Promise<never> {
  let capacity = input.state?.capacity ?? input.capacity;
  const normal: string[] = input.state?.normal ?? [];
  const low: string[] = input.state?.low ?? [];
  const holders = new Map<string, Holder>(input.state?.holders ?? []);
  // Waiting ids with their enqueue time.
  const waitingIds = new Map<string, number>(Object.entries(input.state?.submittedAt ?? {}));
  const continueAfter = input.continueAsNewAfterEvents ?? 5000;
  const timing: AdmissionTiming = { ...DEFAULT_TIMING, ...input.timing };
  // Grants in flight; continue-as-new waits for them, since a new run could not see their outcome.
  let signalsInFlight = 0;
  // Holders to send `admitted` to: new ones, and ones due for a check. Sent together, once per activation.
  const toNotify: string[] = [];
  const { grantSlots } = proxyLocalActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 3, initialInterval: '200ms' },
  });
  let draining = false;
  // Temporal caps the updates one run may take (2000 by default); the queue moves on well before.
  let updates = 0;
  // The holder checker's current sleep, so a sooner check can cut it short.
  let sweepTimer: { until: number; scope: CancellationScope } | undefined;

  const placeOf = (id: string): QueuePlace => {
    if (holders.has(id)) return { state: 'admitted' };
    if (!waitingIds.has(id)) return { state: 'unknown' };
    const inNormal = normal.indexOf(id);
    return { state: 'waiting', position: inNormal >= 0 ? inNormal : normal.length + low.indexOf(id) };
  };

  const scheduleCheck = (holder: Holder, at: number) => {
    holder.checkAt = at;
    if (sweepTimer && at < sweepTimer.until) sweepTimer.scope.cancel();
  };

  /**
   * Tells holders they may start (a local activity signals them); the same signal checks that a holder's workflow
   * still exists. A holder without a workflow loses its slot once it was submitted long enough ago.
   */
  const notify = async (ids: string[]) => {
    signalsInFlight++;
    let missing: string[] = [];
    let failed: string[] = ids;
    try {
      ({ missing, failed } = await grantSlots({ requestIds: ids }));
    } catch {
      // Temporal itself did not answer: every one of them is tried again.
    } finally {
      signalsInFlight--;
    }
    const now = Date.now();
    for (const id of ids) {
      const holder = holders.get(id);
      if (!holder) continue;
      if (failed.includes(id)) {
        scheduleCheck(holder, now + timing.grantRetryMs);
      } else if (!missing.includes(id)) {
        scheduleCheck(holder, now + timing.checkHoldersEveryMs);
      } else if (now - holder.submittedAt >= timing.giveUpAfterMs) {
        // Nobody will give this slot back: the workflow is gone, or the submit died before starting it.
        holders.delete(id);
        pump();
      } else {
        // Its workflow is being started right now.
        scheduleCheck(holder, now + timing.grantRetryMs);
      }
    }
  };

  /** Hands free slots to waiting requests, `normal` first. */
  const pump = () => {
    if (draining) return;
    while (holders.size < capacity) {
      const id = normal.shift() ?? low.shift();
      if (id === undefined) return;
      const submittedAt = waitingIds.get(id) ?? Date.now();
      waitingIds.delete(id);
      holders.set(id, { submittedAt });
      toNotify.push(id);
    }
  };

  const release = (id: string) => {
    if (holders.delete(id)) {
      pump();
    } else if (waitingIds.delete(id)) {
      const list = normal.includes(id) ? normal : low;
      list.splice(list.indexOf(id), 1);
    }
  };

  const enqueue = (entry: EnqueueEntry, queueLimit: number): EnqueueResult => {
    const known = placeOf(entry.requestId);
    if (known.state === 'admitted') return { admitted: true };
    if (known.state === 'waiting') return { admitted: false, position: known.position };
    if (waitingIds.size === 0 && holders.size < capacity) {
      // The API starts this request as admitted, so no grant is sent; its workflow is checked for later instead.
      const holder: Holder = { submittedAt: Date.now() };
      holders.set(entry.requestId, holder);
      scheduleCheck(holder, Date.now() + timing.checkHoldersEveryMs);
      return { admitted: true };
    }
    const limit = Math.min(queueLimit, entry.maxQueueLength ?? Infinity);
    if (waitingIds.size >= limit) return { refused: true, waiting: waitingIds.size, limit };
    (entry.priority === QueuePriority.Low ? low : normal).push(entry.requestId);
    waitingIds.set(entry.requestId, Date.now());
    return { admitted: false, position: (placeOf(entry.requestId) as { position: number }).position };
  };

  setHandler(
    enqueueUpdate,
    (batch) => {
      updates++;
      capacity = batch.capacity;
      // A raised limit frees slots for those already waiting before the new ones are placed.
      pump();
      return batch.entries.map((entry) => enqueue(entry, batch.queueLimit));
    },
    { validator: assertEnqueueBatch },
  );
  setHandler(releaseSignal, (ids) => ids.forEach(release));
  setHandler(queuePlacesQuery, (ids) => ids.map(placeOf));
  setHandler(admissionStatsQuery, () => ({
    capacity,
    running: holders.size,
    waiting: normal.length,
    waitingLow: low.length,
  }));

  // Slots may have been freed or limits raised while the previous run was handing over.
  pump();
  void checkHolders();
  void sendGrants();

  await condition(
    () =>
      workflowInfo().continueAsNewSuggested ||
      workflowInfo().historyLength >= continueAfter ||
      updates >= MAX_UPDATES_PER_RUN,
  );
  draining = true;
  await condition(() => signalsInFlight === 0 && allHandlersFinished());
  // Grants not sent yet go out from the next run, as checks due at once.
  for (const id of toNotify) {
    const holder = holders.get(id);
    if (holder) holder.checkAt = Date.now();
  }
  return continueAsNew<typeof admissionQueue>({
    ...input,
    capacity,
    state: { capacity, normal, low, submittedAt: Object.fromEntries(waitingIds), holders: [...holders] },
  });

  /** Checks each holder at its `checkAt`, for as long as there are any; checks due soon go along (one timer). */
  async function checkHolders(): Promise<void> {
    for (;;) {
      await condition(() => !draining && nextCheckAt() !== undefined);
      const until = nextCheckAt()!;
      const scope = new CancellationScope();
      sweepTimer = { until, scope };
      try {
        await scope.run(() => sleep(Math.max(1, until - Date.now())));
      } catch (err) {
        if (!isCancellation(err)) throw err;
      }
      sweepTimer = undefined;
      if (draining) continue;
      const due = Date.now() + Math.min(CHECK_SLACK_MS, timing.checkHoldersEveryMs / 10);
      for (const [id, holder] of holders) {
        if (holder.checkAt !== undefined && holder.checkAt <= due) {
          holder.checkAt = undefined;
          toNotify.push(id);
        }
      }
    }
  }

  /** Sends what piled up in {@link toNotify}, once per activation (conditions run after all its jobs). */
  async function sendGrants(): Promise<void> {
    for (;;) {
      await condition(() => !draining && toNotify.length > 0);
      void notify(toNotify.splice(0));
    }
  }

  function nextCheckAt(): number | undefined {
    let next: number | undefined;
    for (const holder of holders.values()) {
      if (holder.checkAt !== undefined && (next === undefined || holder.checkAt < next)) next = holder.checkAt;
    }
    return next;
  }
}
