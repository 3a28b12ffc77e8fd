import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelTaskQueue } from '../../src/models/registry';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { PROJECT_ROOT, ensurePythonEnv, startPythonRunner, type RunningProcess } from '../helpers/python-env';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const RUNNER_DIR = join(PROJECT_ROOT, 'examples', 'python-runner');
const APP = 'acme/py-shout';

describe('a model run by an external Python Temporal worker (backend kind "temporal")', () => {
  let stack: Stack;
  let runner: RunningProcess;
  let receiver: LoopbackServer;

  beforeAll(async () => {
    // The example's own pins, installed once into a project-local venv (temporalio is about 30 MB).
    const packages = readFileSync(join(RUNNER_DIR, 'requirements.txt'), 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean);
    const python = await ensurePythonEnv({ dir: join(PROJECT_ROOT, '.venv', 'python-runner'), packages });
    receiver = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({
      models: { models: [{ id: APP, backend: { kind: 'temporal' }, heartbeatTimeoutSeconds: 5 }] },
    });
    runner = await startPythonRunner(stack, APP, python.python, [join(RUNNER_DIR, 'runner.py')], { env: process.env });
  }, 10 * 60_000);
  afterAll(async () => {
    await runner?.stop();
    await stack?.stop();
    await receiver?.close();
  });

  const status = async (id: string) => {
    const res = await stack.api(`/${APP}/requests/${id}/status?logs=1`);
    return (await res.json()) as { status: string; logs: { message: string; level: string }[] };
  };

  it('leaves the model task queue to the external runner: none of our workers polls it', () => {
    const queues = stack.workers!.workers.map((w) => w.options.taskQueue);
    expect(queues).toEqual([stack.config.temporal.taskQueue]);
    expect(queues).not.toContain(modelTaskQueue(stack.config.temporal.taskQueue, APP));
  });

  it('runs a request submitted over HTTP in the Python worker, with its logs visible during the run', async () => {
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, {
      prompt: 'hello from python',
      steps: 6,
      step_seconds: 0.5,
    });
    const running = await eventually(async () => {
      const s = await status(request_id);
      return s.status === 'IN_PROGRESS' && s.logs.some((l) => l.message === 'step 2/6') ? s : undefined;
    }, 20_000);
    expect(running.logs).toContainEqual({
      message: 'step 1/6',
      level: 'INFO',
      source: 'USER',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(running.logs.map((l) => l.message)).not.toContain('step 6/6');

    const done = await waitCompleted(stack, APP, request_id);
    expect(done.error).toBeUndefined();
    expect((done.metrics as { inference_time: number }).inference_time).toBeGreaterThan(2.5);
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(result.status).toBe(200);
    expect(await result.json()).toEqual({ text: 'HELLO FROM PYTHON', words: 3 });
    const delivered = await eventually(async () =>
      receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: { text: 'HELLO FROM PYTHON', words: 3 } });
  });

  it('cancels a running request: the Python activity observes the cancellation', async () => {
    const { request_id } = await submitJson(stack, `/${APP}`, { prompt: 'long', steps: 100, step_seconds: 0.5 });
    await eventually(async () =>
      (await status(request_id)).logs.some((l) => l.message === 'step 2/100') ? true : undefined,
    );

    const cancel = await stack.api(`/${APP}/requests/${request_id}/cancel`, { method: 'PUT' });
    expect(cancel.status).toBe(202);
    await runner.waitFor(new RegExp(`cancellation observed for request ${request_id}`), 15_000);
    expect((await waitCompleted(stack, APP, request_id)).error_type).toBe('cancelled');
  });

  it("ends with fal's 422 when the Python runner rejects the input", async () => {
    const { request_id } = await submitJson(stack, `/${APP}`, { steps: 'many' });
    const done = await waitCompleted(stack, APP, request_id);
    expect(done.error_type).toBe('validation_error');
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(result.status).toBe(422);
    expect(await result.json()).toMatchObject({
      detail: [
        { loc: ['body', 'prompt'], msg: 'field required', type: 'value_error.missing' },
        { loc: ['body', 'steps'], msg: 'value is not a valid integer', type: 'type_error.integer' },
      ],
    });
  });
});
