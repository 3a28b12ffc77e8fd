/**
 * Sequential latency of the smallest workflows, with nothing of ours around them: what the Temporal
 * server itself costs per workflow. Compares the dev server as we launch it (tuned, see
 * TUNED_DYNAMIC_CONFIG) with its stock settings, or measures a server given by address.
 *
 *   node --import tsx bench/workflow-latency.ts [--runs 200] [--untuned] [--temporal-address host:port]
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { ensureTemporalCli } from '../src/temporal/cli';
import { TUNED_DYNAMIC_CONFIG, startDevServer } from '../src/temporal/dev-server';
import { latencyActivities } from './latency/activities';
import { noActivity, oneActivity } from './latency/workflows';
import { projectRoot } from './processes';
import { summarize } from './stats';

/** The server's own defaults for the keys we tune: `--untuned` puts them back. */
const STOCK_VALUES: Record<keyof typeof TUNED_DYNAMIC_CONFIG, number | boolean> = {
  'history.transferProcessorMaxPollRPS': 20,
  'history.visibilityProcessorMaxPollRPS': 20,
  'matching.forwarderMaxRatePerSecond': 10,
  'matching.enableFairness': false,
  'matching.numTaskqueueReadPartitions': 4,
  'matching.numTaskqueueWritePartitions': 4,
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '200' },
      untuned: { type: 'boolean', default: false },
      'temporal-address': { type: 'string' },
      namespace: { type: 'string', default: 'default' },
    },
  });
  const runs = Number(values.runs);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  let address = values['temporal-address'];
  let stop = async (): Promise<void> => undefined;
  if (!address) {
    const cliPath = await ensureTemporalCli({ projectRoot });
    const server = await startDevServer({
      cliPath,
      port: 0,
      uiPort: false,
      dynamicConfig: values.untuned ? STOCK_VALUES : {},
    });
    address = server.address;
    stop = () => server.stop();
  }
  const taskQueue = `latency-${randomUUID()}`;
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: values.namespace,
    taskQueue,
    workflowsPath: join(__dirname, 'latency', 'workflows.ts'),
    activities: latencyActivities,
  });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: values.namespace });
  const results: Record<string, unknown> = {
    server: values['temporal-address'] ? address : values.untuned ? 'dev server, stock settings' : 'dev server, tuned',
  };
  await worker.runUntil(async () => {
    for (const workflow of [oneActivity, noActivity]) {
      const times: number[] = [];
      // The first few include the task queue's creation and the worker's first polls.
      for (let i = -10; i < runs; i++) {
        const started = performance.now();
        await client.workflow.execute(workflow, { taskQueue, workflowId: randomUUID(), args: [i] });
        if (i >= 0) times.push(performance.now() - started);
      }
      results[workflow.name] = summarize(times);
    }
  });
  console.log(JSON.stringify(results, null, 2));
  await connection.close();
  await nativeConnection.close();
  await stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
