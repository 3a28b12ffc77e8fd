import { useStack } from '../helpers/fixtures';
import { submitJson, waitCompleted, eventually } from '../helpers/stack';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process';

const APP = 'acme/slow';

describe('a worker killed with SIGKILL in the middle of an inference', () => {
  const workers: WorkerProcess[] = [];
  // A short heartbeat timeout lets the server notice the dead runner within seconds.
  const models = (backendUrl: string) => ({
    models: [{ id: APP, backend: { kind: 'http', url: backendUrl }, heartbeatTimeoutSeconds: 2, maxAttempts: 5 }],
  });
  afterAll(() => {
    for (const w of workers) w.child.kill('SIGKILL');
  });
  const fx = useStack({ models: ({ backend }) => models(backend.url), workers: false });

  it('finishes the request on a restarted worker and still delivers the webhook', async () => {
    const first = spawnWorker(fx.stack.workerEnv, models(fx.backend.url), fx.stack.config.dataDir);
    workers.push(first);
    await first.ready;

    const hook = encodeURIComponent(`${fx.receiver.url}/hook`);
    const { request_id } = await submitJson(fx.stack, `/${APP}?fal_webhook=${hook}`, { job: 'survive' });
    await fx.backend.nth(1);

    first.child.kill('SIGKILL');
    await first.exited;

    const second = spawnWorker(fx.stack.workerEnv, models(fx.backend.url), fx.stack.config.dataDir);
    workers.push(second);
    await second.ready;
    // The retried attempt reaches the backend again once the dead attempt's heartbeat times out.
    await fx.backend.nth(2, 60_000);
    expect(fx.backend.requests[1]?.json).toEqual({ job: 'survive' });
    fx.backend.release(); // the dead attempt's call, already abandoned
    fx.backend.release({ survived: true });

    const status = await waitCompleted(fx.stack, APP, request_id, 60_000);
    expect(status.error).toBeUndefined();
    const result = await fx.stack.api(`/${APP}/requests/${request_id}`);
    expect(await result.json()).toEqual({ survived: true });
    const delivered = await eventually(async () =>
      fx.receiver.requests.find((r) => (r.json as { request_id?: string })?.request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: { survived: true } });
  });
});
