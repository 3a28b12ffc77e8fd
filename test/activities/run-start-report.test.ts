import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRunInference } from '../../src/activities/run-inference';
import type { FileStore } from '../../src/storage/file-store';
import type { ModelRunner } from '../../src/models/types';

/**
 * When a runner reports the start of a run that waited in the task queue (`runStarted`): at once for an input without
 * `reportStartAfterMs` (what an older workflow sends), after that long for a run still going, never for a run that
 * ended sooner. No server: the activity runs in the SDK's mock activity environment.
 */
describe('runInference reporting the start of a run', () => {
  const MODEL = 'acme/model';
  /** Runs the activity; `reported` lists the requests whose start was reported, as the model sees it too. */
  const run = async (
    model: ModelRunner | ((reported: string[]) => ModelRunner),
    input: { reportStart?: boolean; reportStartAfterMs?: number },
  ) => {
    const reported: string[] = [];
    const runner = typeof model === 'function' ? model(reported) : model;
    let onReport = () => {};
    const activity = createRunInference({
      runners: new Map([[MODEL, runner]]),
      fileStore: {} as FileStore,
      fetchInput: () => Promise.reject(new Error('no input files here')),
      reportStarted: async (requestId) => {
        reported.push(requestId);
        onReport();
      },
    });
    const whenReported = new Promise<void>((resolve) => (onReport = resolve));
    const env = new MockActivityEnvironment();
    const done = env.run(activity, { requestId: 'req-1', modelId: MODEL, input: {}, ...input });
    return { done, reported, whenReported };
  };

  it('reports a run that is still going after reportStartAfterMs, while it runs', async () => {
    let finish = () => {};
    const held = new Promise<void>((resolve) => (finish = resolve));
    const { done, reported, whenReported } = await run(
      { run: () => held.then(() => ({ ok: true })) },
      { reportStart: true, reportStartAfterMs: 20 },
    );
    await whenReported;
    expect(reported).toEqual(['req-1']);
    finish();
    await expect(done).resolves.toMatchObject({ output: { ok: true } });
  });

  it('never reports a run that ends before reportStartAfterMs', async () => {
    const { done, reported } = await run(
      { run: async () => ({ ok: true }) },
      { reportStart: true, reportStartAfterMs: 20 },
    );
    await done;
    // The timer was cleared when the run ended: nothing is sent later either.
    await sleep(60);
    expect(reported).toEqual([]);
  });

  it('reports at once when the input names no delay (a workflow of an older version)', async () => {
    let reportedAtCall: string[] = [];
    const { done } = await run(
      (reported) => ({
        run: async () => {
          reportedAtCall = [...reported];
          return {};
        },
      }),
      { reportStart: true },
    );
    await done;
    // Sent before the model was called: no timer in between.
    expect(reportedAtCall).toEqual(['req-1']);
  });

  it('does not report a run of a request that did not wait in the task queue', async () => {
    const { done, reported } = await run({ run: async () => ({}) }, { reportStartAfterMs: 0 });
    await done;
    await sleep(30);
    expect(reported).toEqual([]);
  });
});
