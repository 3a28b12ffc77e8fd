/**
 * `npm run bench -- --api-overhead`: what the queue API's own HTTP layer costs a request, against the floor of any
 * Node HTTP API measured in the same run. Two servers in one child process:
 * - floor: `node:http` alone, reading the JSON body and answering JSON of the same size;
 * - ours: `createApp` as `npm start` builds it (routing, access log, API key, body parser, zod, fal's answer), with
 *   the Temporal side answered at once (a `RequestsClient` stand-in), so that only the HTTP layer is measured.
 * Each route runs back to back (a busy API) and paused (`--pause-ms` between requests, as at c = 1, where the API
 * idles while a request runs): on a VM, code that ran a few milliseconds ago is several times faster than code that
 * did not, and c = 1 pays the paused price. Rounds alternate the two servers (ABBA).
 *
 *   npm run bench -- --api-overhead [--requests 2000] [--paused-requests 200] [--pause-ms 20] [--rounds 4]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createApp } from '../src/api/app';
import type { RequestsClient } from '../src/client/requests';
import { createMetrics } from '../src/observability/metrics';
import { ModelRegistry } from '../src/models/registry';
import { QueueStatus } from '../src/workflows/shared/request';
import { jsonClient } from './http-client';
import { percentile, ratio, round, table } from './stats';

const MODEL = 'bench/noop';
const KEY = { id: 'bench', secret: 'bench-secret', owner: 'bench' };
const HEADERS = { authorization: `Key ${KEY.id}:${KEY.secret}`, 'content-type': 'application/json' };
const INPUT = JSON.stringify({ prompt: 'a lighthouse at dusk', seed: 42 });

interface Ports {
  floor: number;
  ours: number;
}

/** The child: both servers, and its CPU clock on request. */
async function serve(): Promise<void> {
  const floor = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const id = randomUUID();
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.end(JSON.stringify(answer(id, `http://${req.headers.host}`)));
    });
  });
  // Access lines go to /dev/null synchronously (the API writes them to stdout from libuv's thread pool), so that each
  // line's whole cost is counted in this process and in the request it belongs to.
  const logger = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const requests = {
    submit: async () => ({ requestId: randomUUID(), queuePosition: 0 }),
    get: async (requestId: string) => ({
      requestId,
      modelId: MODEL,
      status: QueueStatus.InQueue,
      queuePosition: 3,
      logs: [],
    }),
  } as unknown as RequestsClient;
  const app = createApp({
    requests,
    registry: ModelRegistry.fromObject({ models: [{ id: MODEL, backend: { kind: 'builtin', name: 'noop' } }] }),
    fileStore: undefined as never,
    apiKeys: [KEY],
    logger,
    metrics: createMetrics(),
    maxBodyBytes: 1 << 20,
    watchers: undefined as never,
    streamKeepAliveMs: 10_000,
    maxUploadBytes: 1 << 20,
    webhooks: undefined as never,
    webhookKeys: undefined as never,
  });
  const listen = async (server: Server) => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  };
  const ports: Ports = { floor: await listen(floor), ours: await listen(app.listen(0, '127.0.0.1')) };
  process.send!({ ports });
  process.on('message', (m: string) => {
    if (m === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send!({ cpuMs: (user + system) / 1000 });
    }
  });
}

/** fal's submit answer (the status answer is about as long). */
function answer(requestId: string, base: string) {
  const urls = `${base}/${MODEL}/requests/${requestId}`;
  return {
    status: QueueStatus.InQueue,
    request_id: requestId,
    response_url: urls,
    status_url: `${urls}/status`,
    cancel_url: `${urls}/cancel`,
    queue_position: 0,
  };
}

/** A whole number of at least 1 from the command line, or a usage error naming the option. */
function count(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${option} must be a whole number of at least 1, got ${value}`);
  return n;
}

function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

async function ask<T>(child: ChildProcess, message: string): Promise<T> {
  const answered = once(child, 'message') as Promise<[T]>;
  child.send(message);
  return (await answered)[0];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '2000' },
      'paused-requests': { type: 'string', default: '200' },
      'pause-ms': { type: 'string', default: '20' },
      rounds: { type: 'string', default: '4' },
    },
  });
  const rounds = count('rounds', values.rounds);
  const pauseMs = count('pause-ms', values['pause-ms']);
  const pacings = [
    { name: 'back to back', requests: count('requests', values.requests), pauseMs: 0 },
    { name: `paused ${pauseMs} ms`, requests: count('paused-requests', values['paused-requests']), pauseMs },
  ];
  const child = fork(__filename, ['--serve'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  try {
    const [{ ports }] = (await once(child, 'message')) as [{ ports: Ports }];
    const call = jsonClient('undici');
    const routes = {
      submit: (port: number) =>
        call(`http://127.0.0.1:${port}/${MODEL}`, { method: 'POST', headers: HEADERS, body: INPUT }),
      status: (port: number) =>
        call(`http://127.0.0.1:${port}/${MODEL}/requests/${randomUUID()}/status`, { headers: HEADERS }),
    };
    console.log(
      `API overhead: ${rounds} alternated rounds per cell; latency p50 per request; CPU of the server process`,
    );
    const rows: (string | number | undefined)[][] = [];
    for (const [routeName, route] of Object.entries(routes)) {
      for (const pacing of pacings) {
        const latencies: Record<keyof Ports, number[]> = { floor: [], ours: [] };
        const cpuMs: Record<keyof Ports, number> = { floor: 0, ours: 0 };
        const run = async (system: keyof Ports, count: number, measured: boolean) => {
          const before = measured ? await ask<{ cpuMs: number }>(child, 'cpu') : undefined;
          for (let i = 0; i < count; i++) {
            if (pacing.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pacing.pauseMs));
            const started = performance.now();
            const { status } = await route(ports[system]);
            if (measured) latencies[system].push(performance.now() - started);
            if (status >= 300) throw new Error(`${system} ${routeName}: HTTP ${status}`);
          }
          if (before) cpuMs[system] += (await ask<{ cpuMs: number }>(child, 'cpu')).cpuMs - before.cpuMs;
        };
        await run('floor', 200, false);
        await run('ours', 200, false);
        const perRound = Math.max(1, Math.ceil(pacing.requests / rounds));
        for (let r = 0; r < rounds; r++) {
          const order: (keyof Ports)[] = r % 2 === 0 ? ['floor', 'ours'] : ['ours', 'floor'];
          for (const system of order) await run(system, perRound, true);
        }
        const p50 = (system: keyof Ports) => percentile(ascending(latencies[system]), 50);
        const cpuUs = (system: keyof Ports) => (cpuMs[system] * 1000) / latencies[system].length;
        rows.push([
          routeName,
          pacing.name,
          round(p50('floor'), 3),
          round(p50('ours'), 3),
          round(ratio(p50('ours'), p50('floor')) ?? NaN, 2),
          round(p50('ours') - p50('floor'), 3),
          Math.round(cpuUs('floor')),
          Math.round(cpuUs('ours')),
        ]);
        console.log(`  ${routeName}, ${pacing.name}: done`);
      }
    }
    console.log(
      table(
        ['route', 'pacing', 'floor p50 ms', 'ours p50 ms', 'ratio', 'ours - floor ms', 'floor CPU µs', 'ours CPU µs'],
        rows,
      ),
    );
  } finally {
    // Also when a call failed: the child would keep this process alive.
    child.kill();
  }
}

if (process.argv.includes('--serve')) {
  void serve();
} else {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
