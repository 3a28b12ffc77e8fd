/**
 * `npm run chaos`: submits N requests with webhooks while killing the worker, the API and the
 * Temporal dev server and taking the webhook receiver down, then accounts for every request.
 * Exits non-zero when any acknowledged request was lost. `--help` lists the options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_CHAOS_OPTIONS, formatChaosReport, runChaos, type ChaosOptions } from './chaos-run';
import { projectRoot } from './processes';
import { Progress } from './progress';

const d = DEFAULT_CHAOS_OPTIONS;
const USAGE = `Usage: npm run chaos -- [options]

  --requests N            requests to submit (default ${d.requests})
  --rate R                submits per second (default ${d.rate})
  --fail-rate F           share of webhook deliveries answered 500 (default ${d.failRate})
  --worker-kills N        kill -9 of the worker, each restarted (default ${d.workerKills})
  --api-restarts N        kill -9 of the API, each restarted on the same port (default ${d.apiRestarts})
  --temporal-kills N      kill -9 of the dev server, restarted on the same database (default ${d.temporalKills})
  --receiver-outage-ms MS receiver refuses connections this long, once (default ${d.receiverOutageMs})
  --model-delay-ms MS     duration of each no-op inference (default ${d.modelDelayMs})
  --model-concurrency N   the model's concurrency limit, or 'unlimited' (default ${d.modelConcurrency})
  --webhook-schedule S    WEBHOOK_SCHEDULE of the run (default ${d.webhookSchedule})
  --drain-timeout-s S     give up waiting for the drain after S seconds (default ${d.drainTimeoutMs / 1000})
  --out FILE              results file (default bench-results/chaos-<time>.json)`;

function parseOptions(argv: string[]): { options: ChaosOptions; out?: string } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      requests: { type: 'string' },
      rate: { type: 'string' },
      'fail-rate': { type: 'string' },
      'worker-kills': { type: 'string' },
      'api-restarts': { type: 'string' },
      'temporal-kills': { type: 'string' },
      'receiver-outage-ms': { type: 'string' },
      'model-delay-ms': { type: 'string' },
      'model-concurrency': { type: 'string' },
      'webhook-schedule': { type: 'string' },
      'drain-timeout-s': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: keyof typeof values, fallback: number, min = 0): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${String(raw)}`);
    return n;
  };
  const concurrency = values['model-concurrency'];
  return {
    out: values.out,
    options: {
      ...d,
      requests: num('requests', d.requests, 1),
      rate: num('rate', d.rate, 0.1),
      failRate: Math.min(0.95, num('fail-rate', d.failRate)),
      workerKills: num('worker-kills', d.workerKills),
      apiRestarts: num('api-restarts', d.apiRestarts),
      temporalKills: num('temporal-kills', d.temporalKills),
      receiverOutageMs: num('receiver-outage-ms', d.receiverOutageMs),
      modelDelayMs: num('model-delay-ms', d.modelDelayMs),
      modelConcurrency:
        concurrency === undefined
          ? d.modelConcurrency
          : concurrency === 'unlimited'
            ? 'unlimited'
            : num('model-concurrency', 1, 1),
      webhookSchedule: values['webhook-schedule'] ?? d.webhookSchedule,
      drainTimeoutMs: num('drain-timeout-s', d.drainTimeoutMs / 1000, 1) * 1000,
    },
  };
}

async function main(): Promise<void> {
  const { options, out } = parseOptions(process.argv.slice(2));
  // Exiting (rather than dying of the signal) runs the 'exit' hooks that kill the services and the dev server.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const progress = new Progress();
  const startedAt = new Date();
  let phase = '';
  const report = await runChaos({
    ...options,
    log: (line) => progress.log(line),
    onProgress: (p) => {
      if (p.phase !== phase) {
        if (phase) progress.finish();
        phase = p.phase;
        progress.start({ submit: 'acknowledged', drain: 'drained', settle: 'settling' }[p.phase], p.total);
      }
      progress.update(p.done, p.note);
    },
  });
  if (phase) progress.finish();
  const file = out ?? join(projectRoot, 'bench-results', `chaos-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverageAtEnd: loadavg() };
  writeFileSync(file, `${JSON.stringify({ startedAt: startedAt.toISOString(), machine, ...report }, null, 2)}\n`);
  console.log(formatChaosReport(report));
  console.log(`\nresults: ${relative(process.cwd(), file)}`);
  process.exitCode = report.ok ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 2;
});
