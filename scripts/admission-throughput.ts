/**
 * How fast the admission path is: `npx tsx scripts/admission-throughput.ts [requests] [concurrency,...]`.
 *
 * Starts a throwaway dev server and, in this one process, the workers, the API and a webhook receiver. Then:
 * 1. the admission queue alone: closed-loop clients enqueue a request id (as the API does) and give it back (as a
 *    request workflow's local activity does), with no request workflows, on a queue started with a small
 *    continue-as-new threshold so hand-overs happen under load;
 * 2. end to end (HTTP submit -> workflow -> no-op model -> result) for the same no-op model declared
 *    `unlimited` (no admission queue), limited above the client count (admission, never waiting) and limited to 8
 *    (most requests wait for a grant).
 * Prints requests/s per case. Figures are for comparing cases within one run on the same machine.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { createAdmissionActivities } from '../src/activities/admission-signals';
import { AdmissionClient } from '../src/client/admission-client';
import { loadConfig } from '../src/config';
import { ModelRegistry } from '../src/models/registry';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { startServer } from '../src/server';
import { ensureTemporalCli } from '../src/temporal/cli';
import { startDevServer } from '../src/temporal/dev-server';
import { installTemporalRuntime } from '../src/temporal/runtime';
import { startWorkers } from '../src/worker-set';
import { admissionQueue } from '../src/workflows';
import { admissionStatsQuery, admissionWorkflowId } from '../src/workflows/admission-queue/messages';

const KEY = 'bench:bench-secret';

async function main(): Promise<void> {
  const requests = Number(process.argv[2] ?? 600);
  const levels = (process.argv[3] ?? '16,64').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'admission-bench-'));
  const cliPath = await ensureTemporalCli({ projectRoot: resolve(__dirname, '..'), log: () => undefined });
  // DB=file: SQLite on disk as `npm start` runs it (every transaction fsynced); default in memory, so the figures
  // show the CPU cost rather than this machine's disk.
  const dev = await startDevServer({
    cliPath,
    dbFile: process.env.DB === 'file' ? join(dir, 'temporal.db') : undefined,
    port: 0,
    uiPort: false,
    searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
  });
  const taskQueue = `bench-${randomUUID()}`;
  const config = loadConfig({
    PORT: '0',
    TEMPORAL_ADDRESS: dev.address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    DATA_DIR: dir,
    API_KEYS: KEY,
    LOG_LEVEL: 'warn',
  });
  const noop = { kind: 'builtin', name: 'noop' };
  const registry = ModelRegistry.fromObject({
    models: [
      { id: 'bench/unlimited', backend: noop, concurrency: 'unlimited', runnerConcurrency: 64 },
      { id: 'bench/limited', backend: noop, concurrency: 1000, runnerConcurrency: 64 },
      { id: 'bench/queued', backend: noop, concurrency: 8 },
    ],
  });
  const logger = pino({ level: 'warn' });
  installTemporalRuntime(logger, 'ERROR');
  const workers = await startWorkers(config, registry, logger);
  const server = await startServer(config, registry, logger);
  const connection = await Connection.connect({ address: dev.address });
  const client = new Client({ connection });

  const closedLoop = async (concurrency: number, total: number, one: () => Promise<void>) => {
    let left = total;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left-- > 0) await one();
      }),
    );
    return total / ((performance.now() - started) / 1000);
  };

  const only = process.env.ONLY;
  // 1. The admission queue alone.
  const admission = new AdmissionClient(client, taskQueue);
  const { releaseSlot } = createAdmissionActivities({ client });
  const queueModel = { id: 'bench/queue-only', capacity: 1_000_000, queueLimit: 10_000 };
  await client.workflow.start(admissionQueue, {
    workflowId: admissionWorkflowId(taskQueue, queueModel.id),
    taskQueue,
    args: [{ modelId: queueModel.id, capacity: queueModel.capacity, continueAsNewAfterEvents: 500 }],
  });
  const enqueueOnly = async () => {
    const requestId = randomUUID();
    const place = await admission.enqueue(queueModel, { requestId, priority: 'normal' });
    if (!place.admitted) throw new Error('expected a slot');
    // The release path request workflows take (their local activity, batching releases that coincide).
    await releaseSlot({ queueWorkflowId: admission.workflowId(queueModel.id), requestId });
  };
  if (only !== 'e2e') await closedLoop(16, 200, enqueueOnly);
  for (const c of only === 'e2e' ? [] : levels) {
    const rate = await closedLoop(c, requests * 2, enqueueOnly);
    console.log(`admission queue alone, ${c} clients: ${rate.toFixed(0)} enqueue+release/s`);
  }
  const queueHandle = client.workflow.getHandle(admissionWorkflowId(taskQueue, queueModel.id));
  const { runId } = await queueHandle.describe();
  await new Promise((r) => setTimeout(r, 500));
  console.log(`  stats after the run: ${JSON.stringify(await queueHandle.query(admissionStatsQuery))}, run ${runId}`);

  // 2. End to end. Completion is the workflow's result (a long poll), not a webhook: webhook delivery is the same
  // for every case and would only add its own cost to each.
  const lastIds = new Map<string, string[]>();
  const submitMs = new Map<string, number[]>();
  const submit = (modelId: string) => async () => {
    const started = performance.now();
    const res = await fetch(`${server.url}/${modelId}`, {
      method: 'POST',
      headers: { authorization: `Key ${KEY}`, 'content-type': 'application/json' },
      body: '{}',
    });
    if (res.status !== 200) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
    const { request_id } = (await res.json()) as { request_id: string };
    submitMs.set(modelId, [...(submitMs.get(modelId) ?? []), performance.now() - started]);
    await client.workflow.getHandle(request_id).result();
    const ids = lastIds.get(modelId) ?? [];
    if (ids.length < 20) lastIds.set(modelId, [...ids, request_id]);
  };
  /** Events in every run of a model's admission queue so far (0 for a model without one). */
  const queueEvents = async (modelId: string) => {
    let total = 0;
    for await (const run of client.workflow.list({
      query: `WorkflowId = "${admissionWorkflowId(taskQueue, modelId)}"`,
    })) {
      total +=
        run.status.name === 'RUNNING'
          ? (await client.workflow.getHandle(run.workflowId, run.runId).describe()).historyLength
          : run.historyLength;
    }
    return total;
  };
  const models = ['bench/unlimited', 'bench/limited', 'bench/queued'];
  for (const c of levels) {
    for (const modelId of models) await closedLoop(c, Math.min(50, requests), submit(modelId));
    // Rounds alternate the cases, so a change in the machine's load touches each of them alike.
    const rates = new Map<string, number[]>(models.map((m) => [m, []]));
    const queueEventsBefore = new Map<string, number>();
    for (const modelId of models) queueEventsBefore.set(modelId, await queueEvents(modelId));
    for (let round = 0; round < 3; round++) {
      for (const modelId of models) {
        lastIds.delete(modelId);
        if (round === 0) submitMs.delete(modelId);
        rates.get(modelId)!.push(await closedLoop(c, requests, submit(modelId)));
      }
    }
    await new Promise((r) => setTimeout(r, 1000)); // visibility catches up
    for (const modelId of models) {
      const r = rates.get(modelId)!;
      const sample = lastIds.get(modelId) ?? [];
      const lengths = await Promise.all(
        sample.map(async (id) => (await client.workflow.getHandle(id).describe()).historyLength),
      );
      const perRequest = lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length);
      const queuePerRequest = ((await queueEvents(modelId)) - queueEventsBefore.get(modelId)!) / (3 * requests);
      console.log(
        `end to end, ${modelId}, ${c} clients: ${median(r).toFixed(1)} requests/s (rounds ${r.map((x) => x.toFixed(1)).join(', ')}); ` +
          `submit p50 ${median(submitMs.get(modelId) ?? [0]).toFixed(0)} ms; ` +
          `events per request: ${perRequest.toFixed(1)} in its workflow, ${queuePerRequest.toFixed(2)} in the admission queue`,
      );
    }
  }

  await server.stop();
  await workers.stop();
  await connection.close();
  await dev.stop();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
