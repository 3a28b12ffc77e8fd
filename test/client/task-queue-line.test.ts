import type { Client } from '@temporalio/client';
import { TaskQueueLines } from '../../src/client/task-queue-line';

/**
 * How often the task-queue lines ask visibility (each count is O(line) work for it). The queries themselves run
 * against a real server in test/queue/task-queue-line.test.ts; here a recording stand-in answers them, with a clock
 * the test moves.
 */
describe('TaskQueueLines: how often visibility is asked', () => {
  function setup(answer: (query: string) => number) {
    const queries: string[] = [];
    let now = 1_000_000;
    const client = {
      workflow: {
        count: async (query: string) => {
          queries.push(query);
          return { count: answer(query), groups: [] };
        },
      },
    } as unknown as Client;
    const lines = new TaskQueueLines(client, 'control', () => now);
    return { lines, queries, advance: (ms: number) => (now += ms) };
  }
  const SUBMITTED = new Date('2026-12-01T00:00:00.000Z');

  it('counts a position far back rarely and one near the front on every read', async () => {
    let ahead = 1000;
    const { lines, queries, advance } = setup((q) => (q.includes('WorkflowId') ? 1 : ahead));
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(1000);
    // The first read checks that visibility knows the request, then counts: two queries.
    expect(queries).toHaveLength(2);
    advance(4_900);
    ahead = 990;
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(1000);
    expect(queries).toHaveLength(2);
    advance(200);
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(990);
    expect(queries).toHaveLength(3);

    ahead = 1;
    advance(30_000);
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(1);
    advance(10);
    ahead = 0;
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(0);
    // At the front the count is never reused.
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(0);
    expect(queries).toHaveLength(6);
    expect(queries.at(-1)).toContain("FalOwner = 'alice' AND StartTime < '2026-12-01T00:00:00.000Z'");
  });

  it("reuses a model's count, plus the submits let in on it, 5 s far from the limit and 1 s nearer", async () => {
    let waiting = 10;
    const { lines, queries, advance } = setup(() => waiting);
    const read = () => lines.waiting('acme/m', { limit: 100, fresh: false });
    expect(await read()).toBe(10);
    advance(4_900);
    // Reused, with the one submit this process let in since.
    expect(await read()).toBe(11);
    expect(queries).toHaveLength(1);
    advance(200);
    waiting = 60;
    expect(await read()).toBe(60);
    advance(900);
    expect(await read()).toBe(61);
    expect(queries).toHaveLength(2);
    advance(200);
    expect(await read()).toBe(60);
    expect(queries).toHaveLength(3);
    // fal_max_queue_length: always counted afresh.
    waiting = 3;
    expect(await lines.waiting('acme/m', { limit: 1000, fresh: true })).toBe(3);
    expect(queries).toHaveLength(4);
  });

  it('counts again before refusing, at most every 100 ms, once the estimate reaches the limit', async () => {
    let waiting = 95;
    const { lines, queries, advance } = setup(() => waiting);
    const read = () => lines.waiting('acme/m', { limit: 100, fresh: false });
    const answers: number[] = [];
    for (let i = 0; i < 8; i++) answers.push(await read());
    // 95 counted, then 96..99 let in on it, then full by that count (less than 100 ms old): refused, not counted.
    expect(answers).toEqual([95, 96, 97, 98, 99, 100, 100, 100]);
    expect(queries).toHaveLength(1);
    // Some started meanwhile: the next count lets submits in again.
    advance(150);
    waiting = 97;
    expect(await read()).toBe(97);
    expect(queries).toHaveLength(2);
    waiting = 100;
    advance(2_000);
    expect(await read()).toBe(100);
    expect(queries).toHaveLength(3);
    // Full by a count this recent: refused without another (the estimate errs high: it counts the refused one too).
    advance(50);
    expect(await read()).toBe(101);
    expect(queries).toHaveLength(3);
    advance(60);
    waiting = 99;
    expect(await read()).toBe(99);
    expect(queries).toHaveLength(4);
  });

  it('quotes owners and models in the query language', async () => {
    const { lines, queries } = setup((q) => (q.includes('WorkflowId') ? 1 : 0));
    await lines.position("acme/it's", "o'brien\\x", 'id', SUBMITTED);
    expect(queries.at(-1)).toContain("FalModelId = 'acme/it\\'s'");
    expect(queries.at(-1)).toContain("FalOwner = 'o\\'brien\\\\x'");
  });
});
