import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { AdmissionClient } from '../src/client/admission';
import { ensureTemporalCli } from '../src/temporal/cli';
import { startDevServer } from '../src/temporal/dev-server';
import { admissionQueue, admissionWorkflowId } from '../src/workflows';

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
  const admission = new AdmissionClient(client, tq);
  for (const [model, can] of [['m-default', undefined], ['m-can500', 500]] as const) {
    await client.workflow.start(admissionQueue, { workflowId: admissionWorkflowId(tq, model), taskQueue: tq, args: [{ modelId: model, capacity: 1e6, continueAsNewAfterEvents: can }] });
    const m = { id: model, capacity: 1e6, queueLimit: 1e4 };
    for (const [c, n, withRelease] of [[1, 50, true], [16, 400, true], [16, 400, false], [64, 800, false]] as const) {
      let left = n; let enq = 0; const lat: number[] = [];
      const s = performance.now();
      await Promise.all(Array.from({ length: c }, async () => {
        while (left-- > 0) {
          const id = randomUUID(); const t = performance.now();
          await admission.enqueue(m, { requestId: id, priority: 'normal' }); lat.push(performance.now() - t); enq++;
          if (withRelease) await admission.release(model, id);
        }
      }));
      const secs = (performance.now() - s) / 1000; lat.sort((a, b) => a - b);
      console.log(`${model} c=${c} release=${withRelease}: ${(n / secs).toFixed(0)} ops/s, enqueue p50 ${lat[lat.length >> 1]!.toFixed(0)} ms`);
    }
    const d = await client.workflow.getHandle(admissionWorkflowId(tq, model)).describe();
    console.log(`  history length of current run ${d.historyLength}`);
  }
  worker.shutdown(); await running; await nc.close(); await connection.close(); await dev.stop();
}
main().catch((e) => { console.error(e); process.exitCode = 1; });
