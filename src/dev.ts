import { join, resolve } from 'node:path';
import { LOCAL_DEV_KEY, defaultPublicBaseUrl, loadConfig } from './config';
import { createLogger } from './logger';
import { ModelRegistry } from './models/registry';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from './observability/search-attributes';
import { startServer } from './server';
import { ensureTemporalCli } from './temporal/cli';
import { startDevServer, type DevServer } from './temporal/dev-server';
import { startWorkers } from './worker-set';
import { installTemporalRuntime } from './temporal/runtime';

/**
 * What `npm start` lets webhooks and model inputs reach when EGRESS_ALLOW is unset: this machine's
 * loopback, so a receiver or an image server on localhost works out of the box. Only here: the API,
 * the worker and the containers refuse every non-public address unless EGRESS_ALLOW says otherwise.
 */
const DEV_EGRESS_ALLOW = '127.0.0.0/8,::1,localhost';

/**
 * `npm start`: everything on one machine. Starts the Temporal dev server (unless TEMPORAL_ADDRESS
 * points at a cluster), the workers with every model of the registry, and the API.
 */
async function main(): Promise<void> {
  const projectRoot = resolve(__dirname, '..');
  const config = loadConfig({ EGRESS_ALLOW: DEV_EGRESS_ALLOW, ...process.env });
  const logger = createLogger(config.logLevel, 'dev', process.stdout.isTTY);
  if (process.env.EGRESS_ALLOW === undefined) {
    logger.info(
      `webhooks and *_url inputs may reach loopback (EGRESS_ALLOW=${DEV_EGRESS_ALLOW}); set EGRESS_ALLOW= to refuse it`,
    );
  }
  const registry = ModelRegistry.load(config.modelsFile, process.env);
  installTemporalRuntime(logger);

  let temporal: DevServer | undefined;
  if (!config.temporal.address) {
    const cliPath = await ensureTemporalCli({ projectRoot, log: (line) => logger.info(line) });
    temporal = await startDevServer({
      cliPath,
      dbFile: join(config.dataDir, 'temporal.db'),
      port: config.temporal.devServerPort,
      uiPort: config.temporal.devServerUiPort,
      namespace: config.temporal.namespace,
      searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
      // With encryption on, the UI asks our API to decode (operators only; see docs/encryption.md).
      uiCodecEndpoint: config.codec.encryptionKeys.length > 0 ? `${defaultPublicBaseUrl(config)}/codec` : undefined,
    });
    if (temporal.uiUrl && process.env.CODEC_CORS_ORIGINS === undefined) {
      config.codec.corsOrigins = [new URL(temporal.uiUrl).origin, `http://localhost:${new URL(temporal.uiUrl).port}`];
    }
    config.temporal.address = temporal.address;
    logger.info({ address: temporal.address, ui: temporal.uiUrl }, 'Temporal dev server ready');
  }

  const workers = await startWorkers(config, registry, logger);
  // One connection for all; with TEMPORAL_EAGER_START, submits start request workflows on this process's control worker.
  const server = await startServer(config, registry, logger, { workerConnection: workers.connection });

  const key = config.apiKeys[0]!;
  console.log(
    [
      '',
      `  Queue API     ${server.url}`,
      temporal?.uiUrl ? `  Temporal UI   ${temporal.uiUrl}` : `  Temporal      ${config.temporal.address}`,
      `  Models        ${registry
        .list()
        .map((m) => m.id)
        .join(', ')}`,
      `  API key       ${key.id}:${key.secret}${`${key.id}:${key.secret}` === LOCAL_DEV_KEY ? ' (local default)' : ''}`,
      '',
      `  curl -X POST ${server.url}/fal-ai/esrgan -H 'Authorization: Key ${key.id}:${key.secret}' \\`,
      `    -H 'Content-Type: application/json' -d '{"image_url": "data:image/png;base64,..."}'`,
      '',
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await server.stop();
    await workers.stop();
    await temporal?.stop();
    logger.info('stopped');
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  await workers.done;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
