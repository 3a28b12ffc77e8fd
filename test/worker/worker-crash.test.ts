import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { startStack, submitJson, waitCompleted, eventually, type Stack } from '../helpers/stack';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process';

const APP = 'acme/slow';

describe('a worker killed with SIGKILL in the middle of an inference', () => {
  let backend: GatedBackend;
  let receiver: LoopbackServer;
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const models = () => ({
    models: [
      // A short heartbeat timeout lets the server notice the dead runner within seconds.
      { id: APP, backend: { kind: 'http', url: backend.url }, heartbeatTimeoutSeconds: 2, maxAttempts: 5 },
    ],
  });

  beforeAll(async () => {
    backend = await startGatedBackend();
    receiver = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({ models: models(), workers: false });
  });
  afterAll(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await stack?.stop();
    await backend?.close();
    await receiver?.close();
  });

  it('finishes the request on a restarted worker and still delivers the webhook', async () => {
    const first = spawnWorker(stack.workerEnv, models(), stack.config.dataDir);
    workers.push(first);
    await first.ready;

    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { job: 'survive' });
    await backend.nth(1);

    first.child.kill('SIGKILL');
    await first.exited;

    const second = spawnWorker(stack.workerEnv, models(), stack.config.dataDir);
    workers.push(second);
    await second.ready;
    // The retried attempt reaches the backend again once the dead attempt's heartbeat times out.
    await backend.nth(2, 60_000);
    expect(backend.requests[1]?.json).toEqual({ job: 'survive' });
    backend.release(); // the dead attempt's call, already abandoned
    backend.release({ survived: true });

    const status = await waitCompleted(stack, APP, request_id, 60_000);
    expect(status.error).toBeUndefined();
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(await result.json()).toEqual({ survived: true });
    const delivered = await eventually(async () =>
      receiver.requests.find((r) => (r.json as { request_id?: string })?.request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: { survived: true } });
  });
});
