import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../../src/observability/search-attributes';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { findFreePort } from '../../src/temporal/net';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, type Stack } from '../helpers/stack';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process';
import { Receiver } from './receiver';

/**
 * A delivery mid-schedule survives SIGKILL of its worker (a new worker process picks it up), then
 * SIGKILL of the Temporal server (a dev server of this file's own, restarted on the same database
 * file and port; the running worker reconnects).
 */
const APP = 'acme/restart';

interface LogBody {
  state: string;
  /** When the next attempt falls due (the server's timer), while one is scheduled. */
  next_attempt_at: string | null;
  attempts: { attempt: number; status_code: number | null; error: string | null }[];
}

let temporal: DevServer;
let dbFile: string;
let temporalPort: number;
let backend: LoopbackServer;
let receiver: Receiver;
let stack: Stack;
const workers: WorkerProcess[] = [];
const models = () => ({ models: [{ id: APP, backend: { kind: 'http', url: backend.url } }] });

async function startTemporal(dbFile: string, port: number): Promise<DevServer> {
  return startDevServer({
    cliPath: process.env.TEST_TEMPORAL_CLI!,
    dbFile,
    port,
    uiPort: false,
    searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
  });
}

async function startWorker(): Promise<WorkerProcess> {
  const worker = spawnWorker(stack.workerEnv, models(), stack.config.dataDir);
  workers.push(worker);
  await worker.ready;
  return worker;
}

/**
 * Waits until `at` has passed on this machine's clock, which the Temporal server shares: the scenario needs an
 * attempt to fall due while something is down, so the wait is for that instant, read from the delivery log.
 */
async function untilPast(at: string | null): Promise<void> {
  if (!at) throw new Error('no attempt is scheduled');
  const ms = Date.parse(at) - Date.now() + 50;
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

async function kill(worker: WorkerProcess): Promise<void> {
  worker.child.kill('SIGKILL');
  await worker.exited;
}

function logWhen(requestId: string, done: (log: LogBody) => boolean): Promise<LogBody> {
  return eventually(async () => {
    const res = await stack.api(`/${APP}/requests/${requestId}/webhook`).catch(() => undefined);
    if (res?.status !== 200) return undefined;
    const log = (await res.json()) as LogBody;
    return done(log) ? log : undefined;
  }, 90_000);
}

beforeAll(async () => {
  const dir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'restart-'));
  dbFile = join(dir, 'temporal.db');
  temporalPort = await findFreePort();
  temporal = await startTemporal(dbFile, temporalPort);
  backend = await startLoopbackServer(respondJson(200, { restarted: true }));
  // Attempts 1 and 2 fail; 3 succeeds. Two seconds apart, so each is due while something is down.
  receiver = await Receiver.start((n) => ({ status: n <= 2 ? 500 : 200 }));
  stack = await startStack({
    models: models(),
    workers: false,
    env: { TEMPORAL_ADDRESS: temporal.address, WEBHOOK_SCHEDULE: '0s,2s,2s,2s,2s' },
  });
}, 120_000);

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  try {
    await stack?.stop();
  } finally {
    // This file's own dev server goes whatever happened above: a test must not leave a server running.
    await temporal?.stop();
    await backend?.close();
    await receiver?.close();
  }
});

it('resumes the schedule after its worker is killed, and again after the Temporal server is killed, mid-schedule', async () => {
  const first = await startWorker();
  const { request_id: requestId } = await submitJson(
    stack,
    `/${APP}?fal_webhook=${encodeURIComponent(receiver.url)}`,
    {},
  );

  // Attempt 1 is recorded, then the worker dies while the 2 s timer runs, and attempt 2 falls due with no worker
  // anywhere (so nothing can have delivered it, however long that took).
  const afterFirst = await logWhen(requestId, (l) => l.attempts.length === 1);
  await kill(first);
  await untilPast(afterFirst.next_attempt_at);
  expect(receiver.deliveries).toHaveLength(1);
  // No worker runs anywhere now, yet the log answers, overdue attempt and all.
  const down = await logWhen(requestId, () => true);
  expect(down.state).toBe('retrying');
  expect(down.attempts.map((a) => a.status_code)).toEqual([500]);

  // A new worker picks the overdue attempt up.
  await startWorker();
  const afterSecond = await logWhen(requestId, (l) => l.attempts.length === 2 && l.next_attempt_at !== null);
  expect(receiver.deliveries).toHaveLength(2);

  // Now the Temporal server dies (SIGKILL) while the worker keeps running, and attempt 3 falls due while it is down
  // (nothing can schedule it then); then the server comes back.
  process.kill(temporal.pid, 'SIGKILL');
  await temporal.stop();
  await untilPast(afterSecond.next_attempt_at);
  expect(receiver.deliveries).toHaveLength(2);

  // Same database file, same port: the API and the running worker reconnect to it.
  temporal = await startTemporal(dbFile, temporalPort);
  const log = await logWhen(requestId, (l) => l.state === 'delivered');

  expect(log.attempts.map((a) => a.status_code)).toEqual([500, 500, 200]);
  expect(receiver.deliveries.map((d) => (d.json as { request_id: string }).request_id)).toEqual([
    requestId,
    requestId,
    requestId,
  ]);
  expect(receiver.deliveries.map((d) => d.headers['webhook-id'])).toEqual(Array(3).fill(`msg_${requestId}`));
}, 180_000);
