import { resolve } from 'node:path';
import { z } from 'zod';

/** Default API key for local use; the server warns at start while it is in use. */
export const LOCAL_DEV_KEY = 'local:local-secret';

const DEFAULT_WEBHOOK_SCHEDULE = '0s,5s,5m,30m,2h,5h,10h,14h,20h,24h';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** `key_id:key_secret[:owner]` entries, comma separated; the owner defaults to the key id. */
const ApiKeys = z
  .string()
  .transform((raw, ctx) => {
    const keys = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => {
        const [id, secret, owner] = entry.split(':');
        if (!id || !secret) {
          ctx.addIssue({ code: 'custom', message: `"${id ?? ''}:…" is not key_id:key_secret[:owner]` });
          return undefined;
        }
        return { id, secret, owner: owner || id };
      });
    return keys.filter((k) => k !== undefined);
  })
  .refine((keys) => keys.length > 0, 'at least one key_id:key_secret is required');

/** Durations like `0s`, `5s`, `5m`, `2h`, `1d`, or plain milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
  return Math.round(Number(m[1]) * factor);
}

const Schedule = z.string().transform((raw, ctx) => {
  const delays = raw.split(',').map((part) => parseDuration(part));
  if (delays.length === 0 || delays.some((d) => d === undefined)) {
    ctx.addIssue({ code: 'custom', message: `"${raw}" is not a comma-separated list of durations like 0s,5s,5m,2h` });
    return z.NEVER;
  }
  return delays as number[];
});

/** Every environment variable the service reads. README's configuration table mirrors this schema. */
export const EnvSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: port.default(8080),
  PUBLIC_BASE_URL: optionalString.pipe(z.url().optional()),
  API_KEYS: ApiKeys.prefault(LOCAL_DEV_KEY),
  MAX_BODY_BYTES: positiveInt.default(20 * 1024 * 1024),

  TEMPORAL_ADDRESS: optionalString,
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('fal-queue'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),

  DATA_DIR: z.string().default('.data'),
  MODELS_FILE: z.string().default('models.json'),

  WORKER_CONTROL: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  WORKER_MODELS: z
    .string()
    .default('*')
    .transform((v) =>
      v.trim() === '*'
        ? ('*' as const)
        : v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
    ),
  WORKFLOW_BUNDLE_PATH: optionalString,
  WORKER_MAX_CACHED_WORKFLOWS: positiveInt.default(1000),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt.default(40),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt.default(100),

  WEBHOOK_SCHEDULE: Schedule.prefault(DEFAULT_WEBHOOK_SCHEDULE),
  WEBHOOK_TIMEOUT_MS: positiveInt.default(15_000),

  INPUT_MAX_BYTES: positiveInt.default(20 * 1024 * 1024),
  INPUT_TIMEOUT_MS: positiveInt.default(30_000),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface ApiKey {
  id: string;
  secret: string;
  owner: string;
}

/** Parsed configuration; entry points build it once with {@link loadConfig}, tests pass plain objects. */
export interface Config {
  http: { host: string; port: number; publicBaseUrl?: string; maxBodyBytes: number };
  apiKeys: ApiKey[];
  temporal: {
    /** Unset means "start the embedded dev server" in the dev launcher, and 127.0.0.1:7233 elsewhere. */
    address?: string;
    namespace: string;
    apiKey?: string;
    tls?: { certPath?: string; keyPath?: string; caPath?: string; serverName?: string };
    taskQueue: string;
    devServerPort: number;
    devServerUiPort: number;
  };
  dataDir: string;
  modelsFile: string;
  worker: {
    /** Whether this process polls the control queue (request workflows, webhook deliveries). */
    control: boolean;
    /** Models this process runs inference for; `'*'` = every model in the registry. */
    models: string[] | '*';
    workflowBundlePath?: string;
    maxCachedWorkflows: number;
    maxConcurrentWorkflowTasks: number;
    maxConcurrentActivities: number;
  };
  webhook: { scheduleMs: number[]; attemptTimeoutMs: number };
  inputs: { maxBytes: number; timeoutMs: number };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
}

/** Thrown when the environment does not describe a valid configuration; the message names each bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once, at start-up. */
export function loadConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const tlsGiven = e.TEMPORAL_TLS_CERT_PATH || e.TEMPORAL_TLS_KEY_PATH || e.TEMPORAL_TLS_CA_PATH;
  if (Boolean(e.TEMPORAL_TLS_CERT_PATH) !== Boolean(e.TEMPORAL_TLS_KEY_PATH)) {
    throw new ConfigError('Invalid configuration:\n  TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH go together');
  }
  return {
    http: { host: e.HOST, port: e.PORT, publicBaseUrl: e.PUBLIC_BASE_URL, maxBodyBytes: e.MAX_BODY_BYTES },
    apiKeys: e.API_KEYS,
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      apiKey: e.TEMPORAL_API_KEY,
      tls: tlsGiven
        ? {
            certPath: e.TEMPORAL_TLS_CERT_PATH,
            keyPath: e.TEMPORAL_TLS_KEY_PATH,
            caPath: e.TEMPORAL_TLS_CA_PATH,
            serverName: e.TEMPORAL_TLS_SERVER_NAME,
          }
        : undefined,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      devServerPort: e.TEMPORAL_PORT,
      devServerUiPort: e.TEMPORAL_UI_PORT,
    },
    dataDir: resolve(cwd, e.DATA_DIR),
    modelsFile: resolve(cwd, e.MODELS_FILE),
    worker: {
      control: e.WORKER_CONTROL,
      models: e.WORKER_MODELS,
      workflowBundlePath: e.WORKFLOW_BUNDLE_PATH ? resolve(cwd, e.WORKFLOW_BUNDLE_PATH) : undefined,
      maxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
      maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
    },
    webhook: { scheduleMs: e.WEBHOOK_SCHEDULE, attemptTimeoutMs: e.WEBHOOK_TIMEOUT_MS },
    inputs: { maxBytes: e.INPUT_MAX_BYTES, timeoutMs: e.INPUT_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
  };
}

/** The base URL clients reach the API at, when none is configured. */
export function defaultPublicBaseUrl(config: Pick<Config, 'http'>): string {
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  return config.http.publicBaseUrl ?? `http://${host}:${config.http.port}`;
}
