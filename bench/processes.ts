import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode, type BundleOptions } from '@temporalio/worker';
import { spawnService as spawnProcess, type ServiceProcess } from '../src/cluster/service-process';
import { quietBundlerLogger, workflowBundleOptions } from '../src/worker-set';

/** The repository root: services are started from here, as `npm start` would. */
export const projectRoot = resolve(__dirname, '..');

export type { ServiceProcess } from '../src/cluster/service-process';

/**
 * Starts `node --import tsx <entry>` from the project root with `env` on top of ours, and waits for
 * `readyText` in its output. The child is SIGKILLed if this process exits first, so an interrupted
 * run leaves nothing behind.
 */
export function spawnService(
  name: string,
  entry: string,
  env: Record<string, string>,
  readyText: string,
  nodeArgs: string[] = [],
): ServiceProcess {
  return spawnProcess({
    name,
    command: process.execPath,
    args: [...nodeArgs, '--import', 'tsx', entry],
    cwd: projectRoot,
    env,
    readyText,
  });
}

/** Where a stack's services find Temporal, their files, the models and the webhook settings. */
export interface ServiceEnvOptions {
  temporalAddress: string;
  taskQueue: string;
  dataDir: string;
  modelsFile: string;
  workflowBundlePath: string;
  apiKeys: string;
  webhookSchedule: string;
  webhookTimeoutMs: number;
  /** `WORKER_*` tuning; unset ones keep src/config.ts defaults. */
  tuning?: { maxCachedWorkflows?: number; maxConcurrentWorkflowTasks?: number; maxConcurrentActivities?: number };
}

/**
 * The environment our worker and API run with in the bench and the chaos run: everything on
 * 127.0.0.1, so webhooks to the loopback receiver must be allowed out (EGRESS_ALLOW).
 */
export function serviceEnv(o: ServiceEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    TEMPORAL_ADDRESS: o.temporalAddress,
    TEMPORAL_TASK_QUEUE: o.taskQueue,
    DATA_DIR: o.dataDir,
    MODELS_FILE: o.modelsFile,
    WORKFLOW_BUNDLE_PATH: o.workflowBundlePath,
    API_KEYS: o.apiKeys,
    WEBHOOK_SCHEDULE: o.webhookSchedule,
    WEBHOOK_TIMEOUT_MS: String(o.webhookTimeoutMs),
    EGRESS_ALLOW: '127.0.0.1/32,::1,localhost',
    LOG_LEVEL: 'info',
  };
  if (o.tuning?.maxCachedWorkflows) env.WORKER_MAX_CACHED_WORKFLOWS = String(o.tuning.maxCachedWorkflows);
  if (o.tuning?.maxConcurrentWorkflowTasks) {
    env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS = String(o.tuning.maxConcurrentWorkflowTasks);
  }
  if (o.tuning?.maxConcurrentActivities)
    env.WORKER_MAX_CONCURRENT_ACTIVITIES = String(o.tuning.maxConcurrentActivities);
  return env;
}

/** Starts `src/worker.ts` (control worker and model runners), ready once it polls. */
export function spawnWorker(env: Record<string, string>, nodeArgs: string[] = []): ServiceProcess {
  return spawnService('worker', 'src/worker.ts', env, 'workers polling', nodeArgs);
}

/** Starts `src/server.ts` (the queue API); `ready` resolves once it listens. */
export function spawnApi(env: Record<string, string>, nodeArgs: string[] = []): ServiceProcess {
  return spawnService('api', 'src/server.ts', env, 'queue API listening', nodeArgs);
}

/** The URL in the API's "queue API listening" log line. */
export function apiUrlOf(readyLine: string): string {
  const url = (JSON.parse(readyLine) as { url?: unknown }).url;
  if (typeof url !== 'string') throw new Error(`no url in the API's ready line: ${readyLine}`);
  return url;
}

/** Resident set size of a process in bytes (Linux `/proc`), or undefined where that is not available. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) a process has used so far, in ms (Linux `/proc`; 10 ms resolution), or
 * undefined where that is not available. Unlike latencies, this barely changes when other work
 * competes for the cores, so it tells where the work goes even on a busy machine.
 */
export function cpuTimeMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after it are plain numbers.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * (1000 / CLOCK_TICKS_PER_SECOND) : undefined;
  } catch {
    return undefined;
  }
}

// USER_HZ: 100 on every Linux architecture Node supports.
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Bundles workflow code once and writes it to `dir`, as production images do; workers load the file.
 * Without `options`, bundles our own workflows exactly as our workers would.
 */
export async function writeWorkflowBundle(
  dir: string,
  fileName: string,
  options: Omit<BundleOptions, 'logger'> = workflowBundleOptions(),
): Promise<string> {
  const { code } = await bundleWorkflowCode({ ...options, logger: quietBundlerLogger() });
  const path = join(dir, fileName);
  writeFileSync(path, code);
  return path;
}

/** Prints what each process last wrote: what a failed run shows before it ends. */
export function printLastOutput(services: Record<string, ServiceProcess>): void {
  for (const service of Object.values(services)) {
    console.error(`--- last output of ${service.name} (pid ${service.pid}) ---\n${service.output()}`);
  }
}
