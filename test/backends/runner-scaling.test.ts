import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process';

const APP = 'acme/scaled';

describe('runner processes for one model', () => {
  let backend: GatedBackend;
  let receiver: LoopbackServer;
  let stack: Stack;
  const runners: WorkerProcess[] = [];
  const models = () => ({
    models: [
      {
        id: APP,
        backend: { kind: 'http', url: backend.url },
        concurrency: 'unlimited',
        // One run per process, so two runs in progress at once can only mean two processes at work.
        runnerConcurrency: 1,
        // A short heartbeat timeout lets the server notice a dead runner within seconds.
        heartbeatTimeoutSeconds: 2,
        maxAttempts: 5,
      },
    ],
  });
  const startRunner = async () => {
    // Runner-only processes, as on a GPU box: no request workflows, just this model's task queue.
    const runner = spawnWorker(
      { ...stack.workerEnv, WORKER_CONTROL: 'false', WORKER_MODELS: APP },
      models(),
      stack.config.dataDir,
    );
    runners.push(runner);
    await runner.ready;
    return runner;
  };

  beforeAll(async () => {
    backend = await startGatedBackend();
    receiver = await startLoopbackServer(respondJson(200, {}));
    // In this process only the control worker: every run goes to the runner processes.
    stack = await startStack({ models: models(), env: { WORKER_MODELS: '' } });
  });
  afterAll(async () => {
    for (const r of runners) r.child.kill('SIGKILL');
    await stack?.stop();
    await backend?.close();
    await receiver?.close();
  });

  it("share the model's queue, and a killed runner's run is finished by the other", async () => {
    const [first] = await Promise.all([startRunner(), startRunner()]);
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const a = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { job: 'a' });
    const b = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { job: 'b' });
    // Both runs are in progress at the backend at once: both runner processes took one.
    await backend.nth(2);
    expect(backend.requests.map((r) => r.json)).toEqual(expect.arrayContaining([{ job: 'a' }, { job: 'b' }]));

    first!.child.kill('SIGKILL');
    await first!.exited;
    // The dead runner's call to the backend drops with it: that tells which run it had.
    const orphan = await eventually(async () => backend.aborted[0]);
    const survivorRun = (orphan as { job: string }).job === 'a' ? b : a;
    backend.release({ done: 'first call' });
    backend.release({ done: 'first call' });
    expect((await waitCompleted(stack, APP, survivorRun.request_id)).error).toBeUndefined();

    // Once the dead attempt's heartbeat times out, the surviving runner runs it again.
    const retried = await backend.nth(3, 30_000);
    expect(retried.json).toEqual(orphan);
    backend.release({ done: 'retried' });
    const orphanRun = (orphan as { job: string }).job === 'a' ? a : b;
    const status = await waitCompleted(stack, APP, orphanRun.request_id);
    expect(status.error).toBeUndefined();
    expect(await (await stack.api(`/${APP}/requests/${orphanRun.request_id}`)).json()).toEqual({ done: 'retried' });
    const delivered = await eventually(async () =>
      receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === orphanRun.request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: { done: 'retried' } });
  });

  it('refuses to start with a bad models file, naming the file, the model and the field', async () => {
    const bad = {
      models: [{ id: 'acme/bad-cog', backend: { kind: 'cog', url: 'ftp://gpu-box:5000' } }],
    };
    const runner = spawnWorker({ ...stack.workerEnv, WORKER_CONTROL: 'false' }, bad, stack.config.dataDir);
    runners.push(runner);
    await expect(runner.ready).rejects.toThrow();
    expect(await runner.exited).toBe(1);
    expect(runner.output()).toMatch(/models-\d+-\d+\.json: invalid models file/);
    expect(runner.output()).toMatch(/model "acme\/bad-cog", field "backend\.url"/);
  });
});
