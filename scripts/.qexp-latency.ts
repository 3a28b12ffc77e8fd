import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { ensureTemporalCli } from '../src/temporal/cli';
import { startDevServer } from '../src/temporal/dev-server';
import { admissionQueue, admissionWorkflowId, enqueueUpdate, releaseSignal, queuePlaceQuery } from '../src/workflows';

async function time(label: string, n: number, fn: (i: number) => Promise<unknown>) {
  const t: number[] = [];
  for (let i = 0; i < n; i++) { const s = performance.now(); await fn(i); t.push(performance.now() - s); }
  t.sort((a, b) => a - b);
  console.log(`${label}: p50 ${t[Math.floor(n / 2)]!.toFixed(1)} ms, p90 ${t[Math.floor(n * 0.9)]!.toFixed(1)} ms`);
}
async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'qexp-'));
  const cliPath = await ensureTemporalCli({ projectRoot: resolve(__dirname, '..'), log: () => undefined });
  const dev = await startDevServer({ cliPath, dbFile: join(dir, 't.db'), port: 0, uiPort: false });
  const tq = `x-${randomUUID()}`;
  const nc = await NativeConnection.connect({ address: dev.address });
  const worker = await Worker.create({ connection: nc, taskQueue: tq, workflowsPath: require.resolve('../src/workflows'), activities: {} });
  const running = worker.run();
  const connection = await Connection.connect({ address: dev.address });
  const client = new Client({ connection });
  const id = admissionWorkflowId(tq, 'm');
  const op = () => new WithStartWorkflowOperation(admissionQueue, { workflowId: id, taskQueue: tq, args: [{ modelId: 'm', capacity: 1e6 }], workflowIdConflictPolicy: 'USE_EXISTING' });
  const batch = () => ({ capacity: 1e6, queueLimit: 1e4, entries: [{ requestId: randomUUID(), priority: 'normal' as const }] });
  await client.workflow.executeUpdateWithStart(enqueueUpdate, { args: [batch()], startWorkflowOperation: op() });
  const h = client.workflow.getHandle(id);
  await time('workflow.start (other wf, no worker wait)', 30, () => client.workflow.start('nonexistent', { workflowId: randomUUID(), taskQueue: `${tq}-none` }));
  await time('executeUpdateWithStart (existing)', 30, () => client.workflow.executeUpdateWithStart(enqueueUpdate, { args: [batch()], startWorkflowOperation: op() }));
  await time('executeUpdate (existing)', 30, () => h.executeUpdate(enqueueUpdate, { args: [batch()] }));
  await time('signal', 30, (i) => h.signal(releaseSignal, `x${i}`));
  await time('query', 30, () => h.query(queuePlaceQuery, 'x'));
  await time('describe', 30, () => h.describe());
  worker.shutdown(); await running; await nc.close(); await connection.close(); await dev.stop();
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
