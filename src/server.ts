import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, type Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { Express } from 'express';
import { createApp } from './api/app';
import { StatusWatchers } from './api/status-watchers';
import { RequestsClient } from './client/requests';
import { createDataConverter, encryptionCodecs } from './codec';
import { LOCAL_DEV_KEY, loadConfig, type Config } from './config';
import { createLogger } from './logger';
import { ModelRegistry } from './models/registry';
import { processMetrics } from './observability/metrics';
import { assertSearchAttributes, checkTemporalReady, queueDepthProbe } from './observability/temporal-checks';
import { createFileStore } from './storage';
import { connectToTemporal } from './temporal/connection';
import { WebhookDeliveries } from './webhooks/deliveries';
import { WebhookKeys } from './webhooks/keys';

/** How long a stopping API lets requests in flight finish before it closes their connections. */
const STOP_GRACE_MS = 5_000;

export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:8080`. */
  url: string;
  server: Server;
  /** The Express app it serves. */
  app: Express;
  /** The polls behind open status streams and synchronous runs (one per watched request). */
  statusWatchers: StatusWatchers;
  stop(): Promise<void>;
}

/** The queue API built by {@link createQueueApi}, not yet listening. */
export interface QueueApi {
  /** The Express app of the queue API: listen on it, or mount it in an app of your own (`app.use(api.app)`). */
  app: Express;
  /** The polls behind open status streams and synchronous runs (one per watched request). */
  statusWatchers: StatusWatchers;
  /**
   * Ends open status streams (which would keep `server.close()` waiting) and the background status reads. Call
   * it when your server shuts down; the Temporal connection stays yours to close.
   */
  close(): Promise<void>;
}

/** What {@link createQueueApi} needs: the process's one Temporal connection and the configuration. */
export type QueueApiOptions = QueueApiBaseOptions &
  (
    | {
        /** A client connection (`Connection.connect`), open for as long as the API serves; the API's client uses it. */
        connection: Connection;
        eagerStart?: false;
      }
    | {
        /** The connection of this process's workers, open for as long as the API serves; the API's client uses it. */
        connection: NativeConnection;
        /**
         * Set when a worker on `connection` polls the control task queue (`config.temporal.taskQueue`): request
         * workflows then start eagerly, their first workflow task handed back to that worker with the start instead of
         * through matching (docs/performance.md). When it has no free slot, the server dispatches the task as usual.
         */
        eagerStart?: boolean;
      }
  );

interface QueueApiBaseOptions {
  config: Config;
  registry: ModelRegistry;
  logger: Logger;
}

/**
 * Builds the queue API on an existing Temporal connection, without listening: {@link startServer} serves it, and an
 * application that embeds the queue mounts `app` in its own Express app. Reads the webhook signing keys
 * (`WEBHOOK_KEYS_DIR`), creating them on first use.
 */
export async function createQueueApi({
  connection,
  eagerStart,
  config,
  registry,
  logger,
}: QueueApiOptions): Promise<QueueApi> {
  // The API hands out file URLs based on how each request reached it, so the store needs no base URL of its own.
  const fileStore = createFileStore(config, '');
  // The operators' codec endpoint decrypts only: a claim-checked payload shows as its readable reference.
  const codecs = encryptionCodecs(config);
  if (codecs.length > 0 && config.codec.authTokens.length === 0 && !config.codec.oidc) {
    logger.warn('payloads are encrypted but CODEC_AUTH_TOKENS is unset: the codec endpoint refuses everyone');
  }
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    // The same data converter as the workers': lossless numbers, the claim check, and encryption when configured.
    dataConverter: createDataConverter(config, fileStore.payloads),
  });
  const metrics = processMetrics();
  const removeQueueProbe = metrics.addQueueProbe(
    queueDepthProbe(connection, {
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      registry,
      searchAttributes: config.temporal.searchAttributes,
    }),
  );
  const requests = new RequestsClient(client, {
    taskQueue: config.temporal.taskQueue,
    registry,
    searchAttributes: config.temporal.searchAttributes,
    metrics,
    eagerStart,
    webhook: {
      scheduleMs: config.webhook.scheduleMs,
      attemptTimeoutMs: config.webhook.attemptTimeoutMs,
      maxPayloadBytes: config.webhook.maxPayloadBytes,
    },
    viewCache:
      config.statusCacheRefreshMs > 0
        ? {
            refreshMs: config.statusCacheRefreshMs,
            // A client that stopped polling for this long has gone (fal's client polls every 500 ms).
            idleMs: Math.max(10_000, 10 * config.statusCacheRefreshMs),
            finished: { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 },
            onError: (err, requestId) => logger.warn({ err, request_id: requestId }, 'background status read failed'),
            onAnswer: (source) => metrics.statusReads.inc({ source }),
          }
        : undefined,
  });
  const webhookKeys = await WebhookKeys.open(config.webhook.keysDir);
  const webhooks = new WebhookDeliveries(client, {
    taskQueue: config.temporal.taskQueue,
    attemptTimeoutMs: config.webhook.attemptTimeoutMs,
  });
  const watchers = new StatusWatchers(requests, { pollMs: config.statusStream.pollMs, logger });
  const app = createApp({
    metrics,
    readiness: () => checkTemporalReady(connection, config.temporal.namespace, 2_000),
    requests,
    registry,
    fileStore,
    apiKeys: config.apiKeys,
    logger,
    maxBodyBytes: config.http.maxBodyBytes,
    publicBaseUrl: config.http.publicBaseUrl,
    trustProxy: config.http.trustProxy,
    redeliveryLimits: config.http.redelivery,
    watchers,
    streamKeepAliveMs: config.statusStream.keepAliveMs,
    maxUploadBytes: config.inputs.maxBytes,
    webhooks,
    webhookKeys,
    codec:
      codecs.length > 0
        ? {
            codecs,
            authTokens: config.codec.authTokens,
            corsOrigins: config.codec.corsOrigins,
            oidc: config.codec.oidc,
            logger,
          }
        : undefined,
  });
  let closing: Promise<void> | undefined;
  return {
    app,
    statusWatchers: watchers,
    close() {
      closing ??= (async () => {
        watchers.close();
        await requests.close();
        removeQueueProbe();
      })();
      return closing;
    },
  };
}

/** What {@link startServer} may share with workers of the same process. */
export interface StartServerOptions {
  /**
   * The connection of this process's workers (`startWorkers(...).connection`): the API uses it instead of a
   * connection of its own, and leaves it open when it stops. With `TEMPORAL_EAGER_START` set and `config.worker.control`
   * (the workers poll the control task queue), request workflows start eagerly on them (see {@link QueueApiOptions}).
   */
  workerConnection?: NativeConnection;
}

/** Connects one Temporal client for the process (or shares its workers') and serves the queue API on config.http. */
export async function startServer(
  config: Config,
  registry: ModelRegistry,
  logger: Logger,
  { workerConnection }: StartServerOptions = {},
): Promise<RunningServer> {
  if (config.apiKeys.some((k) => `${k.id}:${k.secret}` === LOCAL_DEV_KEY)) {
    logger.warn(
      `API_KEYS is unset: accepting the local development key "${LOCAL_DEV_KEY}"; set API_KEYS in production`,
    );
  }
  // A connection of its own unless it shares the workers'; only its own is closed when it stops. Its own is native too
  // (the SDK's Rust client, as the workers'): a start cost the API process about a third less CPU than on grpc-js.
  // Required here, so that an application building the API on a connection of its own never loads the native module.
  const own = workerConnection
    ? undefined
    : await connectToTemporal(config.temporal, (options) =>
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        (require('@temporalio/worker') as typeof import('@temporalio/worker')).NativeConnection.connect(options),
      );
  const connection = own ?? workerConnection!;
  if (config.temporal.searchAttributes) {
    await assertSearchAttributes(connection, config.temporal.namespace).catch(async (err: unknown) => {
      await own?.close();
      throw err;
    });
  }
  const api = await createQueueApi({
    connection,
    // Eager start hands the first task to a worker on the same connection: never on a connection of the API's own.
    eagerStart: !own && config.temporal.eagerStart && config.worker.control,
    config,
    registry,
    logger,
  });
  const server = api.app.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`;
  logger.info({ url }, 'queue API listening');
  let stopping: Promise<void> | undefined;
  return {
    url,
    server,
    app: api.app,
    statusWatchers: api.statusWatchers,
    stop() {
      stopping ??= (async () => {
        // Ends open status streams and synchronous waits, which would otherwise hold the server open.
        api.statusWatchers.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Requests still being answered get a grace period; a stop must end even if one of them never does.
        const cutOff = setTimeout(() => {
          logger.warn({ graceMs: STOP_GRACE_MS }, 'requests still open at stop: their connections are closed');
          server.closeAllConnections();
        }, STOP_GRACE_MS).unref();
        await closed;
        clearTimeout(cutOff);
        await api.close();
        await own?.close();
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'api');
  // The SDK's native core logs through ours (the API's own connection is native). Required here, not imported at the
  // top, so that importing this module for `createQueueApi` does not load the native module; `require` for the
  // reason given in src/models/builtin/index.ts.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('./temporal/runtime') as typeof import('./temporal/runtime')).installTemporalRuntime(logger);
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
