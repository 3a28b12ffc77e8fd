/**
 * Fuzzes the live API with schemathesis (PyPI) against its own `/openapi.json`: a Temporal dev
 * server, the workers and the API run in this process with a loopback HTTP model backend, and
 * schemathesis must find zero 5xx and every answer in its documented status, content type and shape.
 *
 *   node --import tsx scripts/fuzz-api.ts [--max-examples N] [extra schemathesis arguments]
 *
 * `.ci/run` runs it after `npm test`. Installs schemathesis into the project's `.venv` if missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import pino from 'pino';
import { Agent, buildConnector } from 'undici';
import type { ActivityDeps } from '../src/activities';
import { loadConfig } from '../src/config';
import { InputFetchError } from '../src/models/input-files';
import { ModelRegistry } from '../src/models/registry';
import { processMetrics } from '../src/observability/metrics';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../src/observability/search-attributes';
import { workerObservability } from '../src/observability/worker-observability';
import { startServer } from '../src/server';
import { ensureTemporalCli } from '../src/temporal/cli';
import { startDevServer } from '../src/temporal/dev-server';
import { installTemporalRuntime } from '../src/temporal/runtime';
import { createActivityDeps } from '../src/worker-set';
import { createWorkers, loadWorkflowBundle } from '../src/worker-set';

const SCHEMATHESIS_VERSION = '4.32.5';
const CHECKS = 'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance';
// A wall-clock bound on the whole schemathesis run, whatever it finds.
const RUN_TIMEOUT_MS = 10 * 60_000;
const KEY = 'fuzz:fuzz-secret';

const root = resolve(__dirname, '..');

function ensureSchemathesis(): string {
  const bin = join(root, '.venv', 'bin', 'schemathesis');
  const installed =
    existsSync(bin) && spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.includes(SCHEMATHESIS_VERSION);
  if (!installed) {
    console.log(`> installing schemathesis ${SCHEMATHESIS_VERSION} into .venv`);
    const pip = spawnSync(
      join(root, '.venv', 'bin', 'pip'),
      ['install', '-q', `schemathesis==${SCHEMATHESIS_VERSION}`],
      {
        stdio: 'inherit',
      },
    );
    if (pip.status !== 0) throw new Error('pip install schemathesis failed');
  }
  return bin;
}

/**
 * Generated webhook URLs and inputs name arbitrary hosts. This run may only talk to loopback, so
 * anything else fails like an unreachable host, before any DNS lookup or connection.
 */
function loopbackOnly(deps: ActivityDeps): ActivityDeps {
  const isLoopback = (url: string | URL) => {
    const { protocol, hostname } = new URL(url);
    return protocol === 'data:' || ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
  };
  // Webhooks: a connection to anything but loopback fails at once (the hostname is judged before any lookup).
  const connectLoopback = buildConnector({});
  const webhookDispatcher = new Agent({
    connect: (options, callback) =>
      ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(options.hostname)
        ? connectLoopback(options, callback)
        : callback(Object.assign(new Error('not connected during fuzzing'), { code: 'ENOTLOOPBACK' }), null),
  });
  const fetchInput = deps.fetchInput;
  return {
    ...deps,
    fetchInput: (url, signal) =>
      isLoopback(url)
        ? fetchInput(url, signal)
        : Promise.reject(new InputFetchError(`not fetched during fuzzing: ${url}`)),
    webhook: { ...deps.webhook, dispatcher: webhookDispatcher },
  };
}

/** A model backend that answers every input with a small JSON output, at once. */
async function startEchoBackend() {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"images":[],"seed":1}'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/generate`, server };
}

async function main(args: string[]): Promise<number> {
  const cliPath = await ensureTemporalCli({ projectRoot: root, log: (line) => console.log(line) });
  const schemathesis = ensureSchemathesis();
  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-fuzz-'));
  const logger = pino({ level: 'warn' });
  installTemporalRuntime(logger, 'ERROR');

  const temporal = await startDevServer({
    cliPath,
    port: 0,
    uiPort: false,
    dbFile: join(dir, 'temporal.db'),
    searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
  });
  const backend = await startEchoBackend();
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    TEMPORAL_ADDRESS: temporal.address,
    DATA_DIR: dir,
    API_KEYS: KEY,
    EGRESS_ALLOW: '127.0.0.1/32',
    WEBHOOK_SCHEDULE: '0s',
    WEBHOOK_TIMEOUT_MS: '2000',
    LOG_LEVEL: 'warn',
  });
  const registry = ModelRegistry.fromObject({
    legacySubmitModel: 'fal-ai/lora',
    models: [
      // The id the document's examples name, so generated requests reach a real model too.
      { id: 'fal-ai/lora', backend: { kind: 'http', url: backend.url, timeoutSeconds: 10 }, concurrency: 4 },
    ],
  });
  const connection = await NativeConnection.connect({ address: temporal.address });
  const workers = await createWorkers({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    registry,
    workflowBundle: await loadWorkflowBundle(undefined, logger),
    tuning: config.worker,
    observability: workerObservability(processMetrics(), logger),
    activityDeps: loopbackOnly(createActivityDeps(config, registry, new Client({ connection }))),
  });
  const running = Promise.all(workers.map((w) => w.run()));
  const server = await startServer(config, registry, logger);
  console.log(`> fuzzing ${server.url}/openapi.json`);

  try {
    const child = spawn(
      schemathesis,
      [
        'run',
        `${server.url}/openapi.json`,
        '--checks',
        CHECKS,
        '--header',
        `Authorization: Key ${KEY}`,
        '--max-examples',
        '25',
        // One worker: Python 3.11's ast.parse is not thread-safe, and hypothesis parses lambdas while drawing.
        '--workers',
        '1',
        '--request-timeout',
        '20',
        '--seed',
        '20261127',
        '--phases',
        'examples,coverage,fuzzing,stateful',
        '--suppress-health-check',
        'all',
        '--generation-database',
        'none',
        ...args,
      ],
      // In the throwaway directory: schemathesis and hypothesis leave caches in their working directory.
      { cwd: dir, stdio: 'inherit', env: { ...process.env, NO_COLOR: '1' } },
    );
    const timer = setTimeout(() => {
      console.error(`schemathesis ran past ${RUN_TIMEOUT_MS / 60_000} minutes; stopping it`);
      child.kill('SIGTERM');
    }, RUN_TIMEOUT_MS);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    return code ?? 1;
  } finally {
    await server.stop();
    for (const w of workers) w.shutdown();
    await running;
    await connection.close();
    await temporal.stop();
    backend.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
