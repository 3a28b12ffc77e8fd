import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import {
  PROJECT_ROOT,
  ensurePythonEnv,
  startPythonRunner,
  type PythonEnv,
  type RunningProcess,
} from '../helpers/python-env';
import { eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const PACKAGE_DIR = join(PROJECT_ROOT, 'examples', 'python-runner');
const APP = 'acme/py-reverse';

// What a GPU team writes: one plain (blocking) function, no Temporal code. The package runs it in a thread.
const MODEL_FILE = `
import time
from fal_queue_runner import InvalidInput

def reverse(params, log):
    if not isinstance(params, dict) or not isinstance(params.get("text"), str):
        raise InvalidInput([{"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"}])
    log("reversing")
    # Longer than RUN_START_REPORT_AFTER_MS, so the package reports the start (checked below).
    time.sleep(0.5)
    log("done", "DEBUG")
    return {"reversed": params["text"][::-1]}
`;

/**
 * examples/python-runner as a package: pip installs it into a fresh venv (the first run downloads
 * temporalio, about 30 MB, and setuptools for the build; later runs use pip's cache), and a model file
 * outside the repo is served with its `fal-queue-runner` command.
 */
describe('the Python runner package: pip-installed, one model function served end to end', () => {
  let python: PythonEnv;
  let stack: Stack;
  let runner: RunningProcess;
  let receiver: LoopbackServer;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(join(process.env.TEST_TMP_DIR!, 'python-runner-'));
    // Installed from a copy, so the build's egg-info and build/ directories stay out of the repo.
    const source = join(work, 'source');
    cpSync(PACKAGE_DIR, source, { recursive: true, filter: (path) => basename(path) !== '__pycache__' });
    python = await ensurePythonEnv({ dir: join(work, 'venv'), packages: [source] });
    const modelDir = join(work, 'team-model');
    mkdirSync(modelDir);
    writeFileSync(join(modelDir, 'team_model.py'), MODEL_FILE);

    receiver = await startLoopbackServer(respondJson(200, {}));
    stack = await startStack({
      models: { models: [{ id: APP, backend: { kind: 'temporal' }, heartbeatTimeoutSeconds: 5 }] },
    });
    runner = await startPythonRunner(stack, APP, join(python.binDir, 'fal-queue-runner'), ['team_model:reverse'], {
      cwd: modelDir,
      env: { PATH: process.env.PATH },
    });
  }, 10 * 60_000);

  afterAll(async () => {
    await runner?.stop();
    await stack?.stop();
    await receiver?.close();
  });

  it('is imported from the venv, not from the repository', () => {
    const file = execFileSync(python.python, ['-c', 'import fal_queue_runner; print(fal_queue_runner.__file__)'], {
      cwd: work,
      encoding: 'utf8',
    });
    expect(file.trim().startsWith(join(work, 'venv'))).toBe(true);
  });

  it('runs a request through the function, with its logs, its result and the webhook', async () => {
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${hook}`, { text: 'hello' });
    const done = await waitCompleted(stack, APP, request_id);
    expect(done.error).toBeUndefined();
    expect((done.logs as { message: string; level: string }[]).map((l) => [l.message, l.level])).toEqual([
      ['reversing', 'INFO'],
      ['done', 'DEBUG'],
    ]);
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(await result.json()).toEqual({ reversed: 'olleh' });
    const delivered = await eventually(async () =>
      receiver.requests.find((r) => (r.json as { request_id?: string }).request_id === request_id),
    );
    expect(delivered.json).toMatchObject({ status: 'OK', payload: { reversed: 'olleh' } });
    // The package told the request's workflow that its run started (what queue positions count by).
    const connection = await Connection.connect({ address: stack.config.temporal.address! });
    const client = new Client({ connection, namespace: stack.config.temporal.namespace });
    const history = await client.workflow.getHandle(request_id).fetchHistory();
    await connection.close();
    const signals = (history.events ?? []).flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
    expect(signals).toContain('runStarted');
  });

  it("answers fal's 422 with the function's InvalidInput detail, without a retry", async () => {
    const { request_id } = await submitJson(stack, `/${APP}`, { text: 42 });
    const done = await waitCompleted(stack, APP, request_id);
    expect(done.error_type).toBe('validation_error');
    const result = await stack.api(`/${APP}/requests/${request_id}`);
    expect(result.status).toBe(422);
    expect(await result.json()).toMatchObject({
      detail: [{ loc: ['body', 'text'], msg: 'field required', type: 'value_error.missing' }],
    });
  });
});
