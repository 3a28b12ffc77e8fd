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
    advance(19_000);
    ahead = 990;
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(1000);
    expect(queries).toHaveLength(2);
    advance(2_000);
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(990);
    expect(queries).toHaveLength(3);

    ahead = 1;
    advance(30_000);
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(1);
    advance(25);
    ahead = 0;
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(0);
    // At the front the count is never reused.
    expect(await lines.position('acme/m', 'alice', 'far', SUBMITTED)).toBe(0);
    expect(queries).toHaveLength(6);
    expect(queries.at(-1)).toContain("FalOwner = 'alice' AND StartTime < '2026-12-01T00:00:00.000Z'");
  });

  it("reuses a model's count 5 s far from the limit, 1 s below 90 % of it, and never near it", async () => {
    // (Far and near are judged on the count plus the submits let in on it since.)
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
    waiting = 95;
    expect(await read()).toBe(95);
    expect(await read()).toBe(95);
    expect(queries).toHaveLength(4);
    // fal_max_queue_length: always counted afresh.
    waiting = 3;
    expect(await lines.waiting('acme/m', { limit: 1000, fresh: true })).toBe(3);
    expect(queries).toHaveLength(5);
  });

  it('counts afresh once the submits let in on a reused count bring it near the limit', async () => {
    const { lines, queries } = setup(() => 40);
    const read = () => lines.waiting('acme/m', { limit: 100, fresh: false });
    const answers: number[] = [];
    for (let i = 0; i < 60; i++) answers.push(await read());
    // 40, then 41..89 on the reused count (below 90), then a fresh count at 90: and so on.
    expect(answers.slice(0, 3)).toEqual([40, 41, 42]);
    expect(Math.max(...answers)).toBeLessThan(90);
    expect(queries.length).toBeGreaterThan(1);
  });

  it('quotes owners and models in the query language', async () => {
    const { lines, queries } = setup((q) => (q.includes('WorkflowId') ? 1 : 0));
    await lines.position("acme/it's", "o'brien\\x", 'id', SUBMITTED);
    expect(queries.at(-1)).toContain("FalModelId = 'acme/it\\'s'");
    expect(queries.at(-1)).toContain("FalOwner = 'o\\'brien\\\\x'");
  });
});
