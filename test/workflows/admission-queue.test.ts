import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { GrantSlotsInput, GrantSlotsResult } from '../../src/activities';
import { admissionQueue } from '../../src/workflows';
import {
  admissionStatsQuery,
  enqueueUpdate,
  queuePlacesQuery,
  releaseSignal,
  type EnqueueBatch,
  type EnqueueEntry,
  type EnqueueResult,
} from '../../src/workflows/admission-queue/messages';
import { startTimeSkipping, until, type TimeSkipping } from './time-skipping';

/**
 * The admission queue with a mocked `grantSlots` (the local activity that tells a request it may start) on the
 * time-skipping server: admit, wait, priority and release, in workflow order, without request workflows.
 */
const granted: string[] = [];

let ts: TimeSkipping;
beforeAll(async () => {
  ts = await startTimeSkipping({
    async grantSlots({ requestIds }: GrantSlotsInput): Promise<GrantSlotsResult> {
      granted.push(...requestIds);
      return { missing: [], failed: [] };
    },
    async releaseSlot() {},
  });
}, 120_000);
afterAll(async () => ts?.stop());

let queue: WorkflowHandle<typeof admissionQueue>;
beforeEach(async () => {
  granted.length = 0;
  queue = await ts.env.client.workflow.start(admissionQueue, {
    workflowId: `admission-${randomUUID()}`,
    taskQueue: ts.taskQueue,
    args: [{ modelId: 'acme/limited', capacity: 1 }],
  });
});
afterEach(async () => queue.terminate('test over'));

const enqueue = (...entries: EnqueueEntry[]): Promise<EnqueueResult[]> =>
  queue.executeUpdate(enqueueUpdate, { args: [{ capacity: 1, queueLimit: 10, entries }] });
const entry = (requestId: string, priority: 'normal' | 'low' = 'normal'): EnqueueEntry => ({ requestId, priority });

describe('admission queue (mocked grants, time-skipping)', () => {
  it('admits the first request at once and places the next ones in submit order', async () => {
    expect(await enqueue(entry('a'), entry('b'), entry('c'))).toEqual([
      { admitted: true },
      { admitted: false, position: 0 },
      { admitted: false, position: 1 },
    ]);
    expect(await queue.query(queuePlacesQuery, ['c', 'a', 'zz'])).toEqual([
      { state: 'waiting', position: 1 },
      { state: 'admitted' },
      { state: 'unknown' },
    ]);
    // A repeated submit is answered with its current place, and placed nowhere twice.
    expect(await enqueue(entry('b'))).toEqual([{ admitted: false, position: 0 }]);
    expect(await queue.query(admissionStatsQuery)).toEqual({ capacity: 1, running: 1, waiting: 2, waitingLow: 0 });
  });

  it('refuses a malformed enqueue before accepting it: the queue state is untouched', async () => {
    const bad = [
      { capacity: 0, queueLimit: 10, entries: [entry('a')] },
      { capacity: 1, queueLimit: -1, entries: [entry('a')] },
      { capacity: 1, queueLimit: 10, entries: [{ requestId: '', priority: 'normal' }] },
      { capacity: 1, queueLimit: 10, entries: [{ requestId: 'a', priority: 'urgent' }] },
      { capacity: 1, queueLimit: 10, entries: [{ requestId: 'a', priority: 'normal', maxQueueLength: 1.5 }] },
      { capacity: 1, queueLimit: 10, entries: 'a' },
    ];
    for (const batch of bad) {
      // The validator's error is the cause of the client's WorkflowUpdateFailedError.
      const refused = await queue.executeUpdate(enqueueUpdate, { args: [batch as unknown as EnqueueBatch] }).then(
        () => undefined,
        (err: unknown) => err as { cause?: { message?: string } },
      );
      expect(refused?.cause?.message).toMatch(/^enqueue: /);
    }
    expect(await queue.query(admissionStatsQuery)).toEqual({ capacity: 1, running: 0, waiting: 0, waitingLow: 0 });
    // A well-formed one after them is served as usual.
    expect(await enqueue(entry('a'))).toEqual([{ admitted: true }]);
  });

  it('starts a low-priority request only when no normal one is waiting', async () => {
    await enqueue(entry('running'), entry('low-1', 'low'), entry('normal-1'), entry('low-2', 'low'));
    expect(await queue.query(queuePlacesQuery, ['normal-1', 'low-1', 'low-2'])).toEqual([
      { state: 'waiting', position: 0 },
      { state: 'waiting', position: 1 },
      { state: 'waiting', position: 2 },
    ]);
    await queue.signal(releaseSignal, ['running']);
    await until(async () => (granted.length === 1 ? true : undefined));
    expect(granted).toEqual(['normal-1']);
    await queue.signal(releaseSignal, ['normal-1']);
    await until(async () => (granted.length === 2 ? true : undefined));
    expect(granted).toEqual(['normal-1', 'low-1']);
  });

  it('gives a released slot to the next waiting request, and a released place to nobody', async () => {
    await enqueue(entry('a'), entry('b'), entry('c'));
    // b gives its place back before its turn: c moves up, nobody is granted.
    await queue.signal(releaseSignal, ['b']);
    expect(await queue.query(queuePlacesQuery, ['b', 'c'])).toEqual([
      { state: 'unknown' },
      { state: 'waiting', position: 0 },
    ]);
    expect(granted).toEqual([]);
    await queue.signal(releaseSignal, ['a']);
    await until(async () => (granted.length > 0 ? true : undefined));
    expect(granted).toEqual(['c']);
    expect(await queue.query(admissionStatsQuery)).toMatchObject({ running: 1, waiting: 0 });
  });

  it('refuses a submit when as many requests wait as its fal_max_queue_length allows', async () => {
    await enqueue(entry('a'), entry('b'));
    expect(await enqueue({ ...entry('c'), maxQueueLength: 1 })).toEqual([{ refused: true, waiting: 1, limit: 1 }]);
  });

  it('hands out more slots when the model limit is raised', async () => {
    await enqueue(entry('a'), entry('b'), entry('c'));
    await queue.executeUpdate(enqueueUpdate, { args: [{ capacity: 3, queueLimit: 10, entries: [] }] });
    await until(async () => (granted.length === 2 ? true : undefined));
    expect(granted.sort()).toEqual(['b', 'c']);
  });
});
