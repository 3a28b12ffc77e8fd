import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig, type Config } from '../../src/config';
import { ModelRegistry } from '../../src/models/registry';
import { startServer, type RunningServer } from '../../src/server';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { startWorkers, type RunningWorkers } from '../../src/worker-set';
import { TEST_KEY } from '../helpers/stack';

/** Every JSON log line a stack wrote. */
export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger = pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) this.lines.push(JSON.parse(line));
        done();
      },
    }),
  );

  find(predicate: (line: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
    return this.lines.find(predicate);
  }
}

export interface ObservedStack {
  config: Config;
  server: RunningServer;
  workers: RunningWorkers;
  logs: LogCapture;
  api(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/**
 * API and workers like `startStack`, but logging to a {@link LogCapture} at info level, and with the
 * worker's own metrics server on a free port (METRICS_PORT=0).
 */
export async function startObservedStack(models: unknown, env: Record<string, string> = {}): Promise<ObservedStack> {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is unset: run the tests through jest (global setup)');
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    METRICS_PORT: '0',
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: `test-${randomUUID()}`,
    DATA_DIR: mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'observed-')),
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE ?? '',
    API_KEYS: `${TEST_KEY}:alice`,
    WEBHOOK_SCHEDULE: '0s,300ms,300ms',
    WEBHOOK_TIMEOUT_MS: '2000',
    EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
    ...env,
  });
  const registry = ModelRegistry.fromObject(models);
  const logs = new LogCapture();
  try {
    installTemporalRuntime(logs.logger, 'ERROR');
  } catch {
    // Installed already in this jest worker.
  }
  const server = await startServer(config, registry, logs.logger);
  config.http.publicBaseUrl = server.url;
  const workers = await startWorkers(config, registry, logs.logger);
  return {
    config,
    server,
    workers,
    logs,
    api: (path, init = {}) =>
      fetch(`${server.url}${path}`, {
        ...init,
        headers: { authorization: `Key ${TEST_KEY}`, ...(init.headers as Record<string, string>) },
      }),
    async stop() {
      await server.stop();
      await workers.stop();
    },
  };
}

/** The sum of a Prometheus series' samples whose labels include `labels`, in text exposition format. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(match[3]);
  }
  return sum;
}
