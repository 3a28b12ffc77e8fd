import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Logger } from 'pino';
import { createApp } from './api/app';
import { RequestsClient } from './client/requests';
import { LOCAL_DEV_KEY, loadConfig, type Config } from './config';
import { createLogger } from './logger';
import { ModelRegistry } from './models/registry';
import { LocalFileStore } from './storage/file-store';
import { temporalConnectionOptions } from './temporal/connection';

export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:8080`. */
  url: string;
  server: Server;
  stop(): Promise<void>;
}

/** Connects one Temporal client for the process and serves the queue API on config.http. */
export async function startServer(config: Config, registry: ModelRegistry, logger: Logger): Promise<RunningServer> {
  if (config.apiKeys.some((k) => `${k.id}:${k.secret}` === LOCAL_DEV_KEY)) {
    logger.warn(
      `API_KEYS is unset: accepting the local development key "${LOCAL_DEV_KEY}"; set API_KEYS in production`,
    );
  }
  const connection = await Connection.connect(temporalConnectionOptions(config.temporal));
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const requests = new RequestsClient(client, {
    taskQueue: config.temporal.taskQueue,
    registry,
    webhook: { scheduleMs: config.webhook.scheduleMs, attemptTimeoutMs: config.webhook.attemptTimeoutMs },
  });
  const app = createApp({
    requests,
    registry,
    fileStore: new LocalFileStore(join(config.dataDir, 'files'), ''),
    apiKeys: config.apiKeys,
    logger,
    maxBodyBytes: config.http.maxBodyBytes,
    publicBaseUrl: config.http.publicBaseUrl,
  });
  const server = app.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`;
  logger.info({ url }, 'queue API listening');
  let stopping: Promise<void> | undefined;
  return {
    url,
    server,
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await connection.close();
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'api');
  const registry = ModelRegistry.load(config.modelsFile, process.env);
  const running = await startServer(config, registry, logger);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down API');
      void running.stop();
    });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
