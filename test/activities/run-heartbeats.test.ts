import { MockActivityEnvironment } from '@temporalio/testing';
import { createRunInference, type InferenceHeartbeat, type InferenceResult } from '../../src/activities/run-inference';
import type { FileStore } from '../../src/storage/file-store';
import type { ModelRunner } from '../../src/models/types';

/**
 * What `runInference` heartbeats: a run's logs as they come, and nothing for a quick run that logged nothing (the
 * SDK sends a first heartbeat at once, one more server call per request). No server: the SDK's mock environment.
 */
describe('runInference heartbeats', () => {
  const MODEL = 'acme/model';
  const run = async (runner: ModelRunner) => {
    const heartbeats: InferenceHeartbeat[] = [];
    const activity = createRunInference({
      runners: new Map([[MODEL, runner]]),
      fileStore: {} as FileStore,
      fetchInput: () => Promise.reject(new Error('no input files here')),
    });
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (details: InferenceHeartbeat) => heartbeats.push(structuredClone(details)));
    const result = (await env.run(activity, { requestId: 'req-1', modelId: MODEL, input: {} })) as InferenceResult;
    return { result, heartbeats };
  };

  it('sends none for a quick run without logs', async () => {
    const { result, heartbeats } = await run({ run: async () => ({ ok: true }) });
    expect(result.output).toEqual({ ok: true });
    expect(heartbeats).toEqual([]);
  });

  it('sends the logs with each line the model writes', async () => {
    const { result, heartbeats } = await run({
      run: async (_input, ctx) => {
        ctx.log('loading');
        ctx.log('done', 'DEBUG');
        return { ok: true };
      },
    });
    expect(heartbeats.map((h) => h.logs.map((l) => [l.message, l.level]))).toEqual([
      [['loading', 'INFO']],
      [
        ['loading', 'INFO'],
        ['done', 'DEBUG'],
      ],
    ]);
    expect(result.logs.map((l) => l.message)).toEqual(['loading', 'done']);
  });
});
