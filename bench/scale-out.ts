/**
 * `npm run bench -- --scale-out` (or `node --import tsx bench/scale-out.ts`): throughput of the cluster topology
 * (PostgreSQL + Temporal server + API + control worker + N model runner processes) for a model whose run takes a
 * fixed time, with 1 and then 2 runner processes of `runnerConcurrency` 1 each, and the CPU each process spends per
 * request. Closed loop: `clients` submitters, each waiting for its webhook before the next submit.
 *
 *   --runners 1,2       runner process counts to measure (default 1,2)
 *   --clients N         concurrent submitters (default 8: enough to keep 2 one-slot runners busy)
 *   --duration S        seconds measured per runner count, after a warm-up (default 20)
 *   --delay-ms MS       the model's fixed run time (default 100)
 *   --out FILE          results file (default bench-results/scale-out-<time>.json)
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { startServices } from '../src/cluster/services';
import { startThrowawayTemporalCluster } from '../src/cluster/temporal-cluster';
import { findFreePort } from '../src/temporal/net';
import { cpuTimeMs, projectRoot } from './processes';
import { WebhookReceiver } from './receiver';
import { round, summarize } from './stats';

const MODEL = 'bench/fixed';
const KEY = 'bench:bench-secret';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runners: { type: 'string', default: '1,2' },
      clients: { type: 'string', default: '8' },
      duration: { type: 'string', default: '20' },
      'delay-ms': { type: 'string', default: '100' },
      out: { type: 'string' },
    },
  });
  const runnerCounts = values.runners.split(',').map(Number);
  const clients = Number(values.clients);
  const durationMs = Number(values.duration) * 1000;
  const delayMs = Number(values['delay-ms']);
  const log = (line: string) => console.log(line);
  const startedAt = new Date();

  const dir = mkdtempSync(join(tmpdir(), 'fal-queue-scale-out-'));
  chmodSync(dir, 0o755);
  const cluster = await startThrowawayTemporalCluster({ projectRoot, dataDir: join(dir, 'cluster'), log });
  const receiver = await WebhookReceiver.start();
  const modelsFile = join(dir, 'models.json');
  writeFileSync(
    modelsFile,
    JSON.stringify({
      models: [
        {
          id: MODEL,
          backend: { kind: 'builtin', name: 'noop', options: { delayMs } },
          // The runners' slots are the only limit measured here: a model's `concurrency` defaults to 1 across the
          // whole cluster (its admission queue), which would hold 2 runners to one run at a time.
          concurrency: 'unlimited',
          runnerConcurrency: 1,
        },
      ],
    }),
  );
  const levels: Record<string, unknown>[] = [];
  try {
    for (const runners of runnerCounts) {
      const services = await startServices({
        projectRoot,
        dataDir: join(dir, `services-${runners}`),
        address: cluster.address,
        apiPort: await findFreePort(),
        runners,
        env: {
          MODELS_FILE: modelsFile,
          TEMPORAL_TASK_QUEUE: `scale-out-${runners}`,
          API_KEYS: KEY,
          EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
          LOG_LEVEL: 'info',
        },
        log,
      });
      try {
        const submitOne = async (): Promise<number> => {
          const started = performance.now();
          const res = await fetch(`${services.apiUrl}/${MODEL}?fal_webhook=${encodeURIComponent(receiver.url)}`, {
            method: 'POST',
            headers: { authorization: `Key ${KEY}`, 'content-type': 'application/json' },
            body: '{}',
          });
          const { request_id } = (await res.json()) as { request_id: string };
          await receiver.waitFor(request_id);
          return performance.now() - started;
        };
        const loop = async (untilMs: number, latencies: number[]) => {
          while (Date.now() < untilMs) latencies.push(await submitOne());
        };
        log(`[scale-out] ${runners} runner(s): warm-up`);
        await Promise.all(Array.from({ length: clients }, () => loop(Date.now() + 5000, [])));
        const processes = { api: services.api, worker: services.worker, temporal: cluster.temporal };
        const pids: Record<string, number> = Object.fromEntries([
          ...Object.entries(processes).map(([name, p]) => [name, 'current' in p ? p.current.pid : p.pid]),
          ...services.runners.map((r) => [r.name, r.current.pid]),
          ['postgres', cluster.postgres.pid!],
        ]);
        // PostgreSQL works in one backend process per connection, children of the postmaster.
        const cpuOf = (name: string, pid: number) =>
          name === 'postgres' ? treeCpuTimeMs(pid) : (cpuTimeMs(pid) ?? NaN);
        const cpuBefore = Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, cpuOf(n, pid)]));
        log(`[scale-out] ${runners} runner(s): measuring ${durationMs / 1000} s with ${clients} clients`);
        const latencies: number[] = [];
        const t0 = Date.now();
        await Promise.all(Array.from({ length: clients }, () => loop(t0 + durationMs, latencies)));
        const elapsedS = (Date.now() - t0) / 1000;
        const cpuPerRequestMs = Object.fromEntries(
          Object.entries(pids).map(([n, pid]) => [
            n,
            round(((cpuTimeMs(pid) ?? NaN) - cpuBefore[n]!) / latencies.length),
          ]),
        );
        const level = {
          runners,
          completed: latencies.length,
          throughputRps: round(latencies.length / elapsedS),
          endToEndMs: summarize(latencies),
          cpuPerRequestMs,
        };
        levels.push(level);
        log(`[scale-out] ${JSON.stringify(level)}`);
      } finally {
        await services.stop();
      }
    }
  } finally {
    await receiver.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = levels[0] as { throughputRps: number } | undefined;
  const results = {
    startedAt: startedAt.toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverageAtEnd: loadavg() },
    options: { runnerCounts, clients, durationMs, delayMs },
    levels,
    speedup: levels.map((l) => round((l as { throughputRps: number }).throughputRps / (base?.throughputRps ?? NaN))),
  };
  const file =
    values.out ?? join(projectRoot, 'bench-results', `scale-out-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nrunners  req/s  speedup  e2e p50 ms  CPU ms/request (per process)`);
  levels.forEach((l, i) => {
    const level = l as {
      runners: number;
      throughputRps: number;
      endToEndMs?: { p50: number };
      cpuPerRequestMs: object;
    };
    console.log(
      `${String(level.runners).padEnd(8)} ${String(level.throughputRps).padEnd(6)} ${String(results.speedup[i]).padEnd(8)} ` +
        `${String(level.endToEndMs?.p50).padEnd(11)} ${JSON.stringify(level.cpuPerRequestMs)}`,
    );
  });
  console.log(`\nresults: ${relative(process.cwd(), file)}`);
}

/** CPU time of a process and its children (Linux `/proc`), in ms. */
function treeCpuTimeMs(pid: number): number {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // Not Linux, or gone: the process's own time only.
  }
  return [pid, ...children].reduce((sum, p) => sum + (cpuTimeMs(p) ?? 0), 0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
