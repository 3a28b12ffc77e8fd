import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';

/**
 * Replays the recorded histories (`test/fixtures/histories`, written by `record-histories.test.ts`) against the
 * current workflow bundle. A change to a workflow that would break a run already in flight (a command added, removed
 * or reordered without `patched()`) fails here with a nondeterminism error.
 */
const DIR = join(__dirname, '..', 'fixtures', 'histories');
const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

/**
 * A history file as the `History` message. The SDK's own `historyFromJSON` fails when npm installs two copies of
 * protobufjs (one under `@temporalio/common`, one under `@temporalio/proto`), so this parses with the copy that built
 * the proto classes.
 */
function readHistory(file: string): proto.temporal.api.history.v1.History {
  const { fromJson } = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as {
    fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
  };
  const root = patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown };
  const json: unknown = JSON.parse(readFileSync(join(DIR, file), 'utf8'));
  return fromJson(root.lookupType('temporal.api.history.v1.History'), json, {
    ignoreUnknownFields: true,
  }) as proto.temporal.api.history.v1.History;
}

beforeAll(() => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  } catch {
    // Installed by another suite in this jest worker.
  }
});

it('has a recorded history of every workflow type', () => {
  const types = new Set(files.map((f) => f.split('.')[0]));
  expect([...types].sort()).toEqual(['admission-queue', 'file-sweep', 'inference-request', 'webhook-delivery']);
});

it('replays every recorded history against the current workflow bundle without nondeterminism', async () => {
  const histories = files.map((file) => ({ workflowId: file, history: readHistory(file) }));
  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    {
      workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
      replayName: 'recorded-histories',
      // Sinks are not called on replay, but the worker must know them.
      sinks: { queueMetrics: { requestCompleted: { fn() {} }, webhookDeliveryEnded: { fn() {} } } },
    },
    histories,
  )) {
    replayed++;
    if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed).toBe(files.length);
}, 120_000);
