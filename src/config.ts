import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import { parseRate, type Rate } from './api/rate-limit';
import { parseEncryptionKeys, type EncryptionKey } from './codec/encryption';
import { parseEgressAllow } from './egress/policy';

/** Default API key for local use; the server warns at start while it is in use. */
export const LOCAL_DEV_KEY = 'local:local-secret';

const DEFAULT_WEBHOOK_SCHEDULE = '0s,5s,5m,30m,2h,5h,10h,14h,20h,24h';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const commaList = z
  .string()
  .default('')
  .transform((raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

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

/** `N/duration`, e.g. `10/10m`: at most N at once, N more over each duration. */
const RateSpec = z.string().transform((raw, ctx) => {
  const rate = parseRate(raw, parseDuration);
  if (!rate) {
    ctx.addIssue({ code: 'custom', message: `"${raw}" is not a rate like 10/10m (N per duration)` });
    return z.NEVER;
  }
  return rate;
});

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Express's `trust proxy`: unset/`false`, `true` (any proxy), a hop count, or a comma-separated list
 * of addresses, CIDR ranges and the names `loopback`, `linklocal`, `uniquelocal`.
 */
const TrustProxy = z
  .string()
  .default('false')
  .transform((raw, ctx): boolean | number | string => {
    const value = raw.trim();
    if (value === '' || value === 'false') return false;
    if (value === 'true') return true;
    if (/^\d+$/.test(value)) return Number(value);
    const bad = value
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => !PROXY_NAMES.has(entry) && !ipaddr.isValid(entry) && !ipaddr.isValidCIDR(entry));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `not an address, CIDR range or loopback/linklocal/uniquelocal: ${bad}` });
      return z.NEVER;
    }
    return value;
  });

/** Every environment variable the service reads. The configuration table in docs/operations.md mirrors this schema. */
export const EnvSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: port.default(8080),
  PUBLIC_BASE_URL: optionalString.pipe(z.url().optional()),
  API_KEYS: ApiKeys.prefault(LOCAL_DEV_KEY),
  MAX_BODY_BYTES: positiveInt.default(20 * 1024 * 1024),
  TRUST_PROXY: TrustProxy,
  REDELIVER_RATE_PER_REQUEST: RateSpec.prefault('10/10m'),
  REDELIVER_RATE_PER_OWNER: RateSpec.prefault('300/1h'),

  TEMPORAL_ADDRESS: optionalString.pipe(
    z
      .string()
      .regex(/^(?!\w+:\/\/)\S+$/, 'must be host:port without a scheme, e.g. temporal.internal:7233')
      .optional(),
  ),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('fal-queue'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_SEARCH_ATTRIBUTES: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),

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
  WEBHOOK_MAX_PAYLOAD_BYTES: positiveInt.default(1024 * 1024),
  WEBHOOK_KEYS_DIR: optionalString,
  EGRESS_ALLOW: z
    .string()
    .default('')
    .transform((raw, ctx) => {
      try {
        return parseEgressAllow(raw);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),

  INPUT_MAX_BYTES: positiveInt.default(20 * 1024 * 1024),
  INPUT_TIMEOUT_MS: positiveInt.default(30_000),

  COG_WEBHOOK_HOST: z.string().min(1).default('127.0.0.1'),
  COG_WEBHOOK_PORT: port.default(0),
  COG_WEBHOOK_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),

  STORAGE_URL: optionalString.pipe(
    z
      .string()
      .regex(/^(local|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'must be "local" or s3://bucket[/prefix]')
      .optional(),
  ),
  S3_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  S3_PUBLIC_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  S3_PUBLIC_BASE_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false', '1', '0']).optional(),
  AWS_REGION: optionalString,
  AWS_DEFAULT_REGION: optionalString,
  AWS_ACCESS_KEY_ID: optionalString,
  AWS_SECRET_ACCESS_KEY: optionalString,
  AWS_SESSION_TOKEN: optionalString,
  CLAIM_CHECK_THRESHOLD_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(128 * 1024),
  CLAIM_CHECK_RETENTION_SECONDS: positiveInt.default(30 * 86_400),

  FILE_EXPIRATION_SECONDS: z.coerce.number().int().min(0).default(604_800),
  FILE_SWEEP_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000),
  STATUS_STREAM_POLL_MS: positiveInt.default(500),
  STATUS_STREAM_KEEPALIVE_MS: positiveInt.max(10_000).default(5_000),
  STATUS_CACHE_REFRESH_MS: z.coerce.number().int().min(0).default(500),

  METRICS_PORT: optionalString.pipe(z.coerce.number<string | undefined>().int().min(0).max(65535).optional()),

  PAYLOAD_ENCRYPTION_KEYS: z
    .string()
    .default('')
    .transform((raw, ctx) => {
      try {
        return parseEncryptionKeys(raw);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  CODEC_AUTH_TOKENS: commaList,
  CODEC_CORS_ORIGINS: commaList.pipe(z.array(z.url({ protocol: /^https?$/ }))),
  CODEC_OIDC_ISSUER: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  CODEC_OIDC_AUDIENCE: optionalString,
  CODEC_OIDC_CLAIM: optionalString.pipe(
    z
      .string()
      .regex(/^[^=\s]+=\S+$/, 'must be claim=value, e.g. groups=temporal-operators')
      .optional(),
  ),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface ApiKey {
  id: string;
  secret: string;
  owner: string;
}

/** Parsed configuration; entry points build it once with {@link loadConfig}, tests pass plain objects. */
export interface Config {
  http: {
    host: string;
    port: number;
    publicBaseUrl?: string;
    maxBodyBytes: number;
    /** Express's `trust proxy`: whose `X-Forwarded-*` headers build our URLs. */
    trustProxy: boolean | number | string;
    /** Token buckets of webhook redelivery, per request and per owner. */
    redelivery: { perRequest: Rate; perOwner: Rate };
  };
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
    /** Whether requests carry the search attributes of `src/observability/search-attributes.ts` (they must be registered). */
    searchAttributes: boolean;
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
  webhook: {
    scheduleMs: number[];
    attemptTimeoutMs: number;
    /** Largest `payload` (as JSON) a webhook carries; over it the body says `payload_error`. */
    maxPayloadBytes: number;
    /** Signing keys and the Standard Webhooks master secret (generated when missing). */
    keysDir: string;
  };
  /** Extra destinations (CIDRs, IPs, host names) that webhooks and model input URLs may reach. */
  egress: { allow: string[] };
  inputs: { maxBytes: number; timeoutMs: number };
  /** Where a runner listens for the log webhooks of the Cog servers it calls (`cog` backends). */
  cogWebhook: { host: string; port: number; publicUrl?: string };
  files: {
    /** Lifetime of a stored file (output or upload) whose request names none; 0 = kept forever. */
    expiresInSeconds: number;
    /** Time between two runs of the sweeper schedule that deletes expired files. */
    sweepEveryMs: number;
  };
  /** Where files, uploads and claim-checked payloads live (see docs/storage.md). */
  storage: StorageConfig;
  /** The SSE status stream: how often a watched request is read, and the longest silence between events. */
  statusStream: { pollMs: number; keepAliveMs: number };
  /**
   * How often the API re-reads a request in flight that clients are polling (polls are answered from the latest
   * read; finished requests are kept in memory); 0 = every status read goes to Temporal.
   */
  statusCacheRefreshMs: number;
  /**
   * Payload encryption and the codec endpoint (`/codec/encode`, `/codec/decode`) that decodes payloads for
   * operators in the Temporal Web UI and CLI. See docs/encryption.md.
   */
  codec: {
    /** AES-256 keys; the first encrypts, all decrypt. Empty = payloads are stored in clear. */
    encryptionKeys: EncryptionKey[];
    /** Bearer tokens of operators allowed to use the codec endpoint (not tenant API keys). */
    authTokens: string[];
    /** Browser origins (the Temporal Web UI's) allowed to call the codec endpoint. */
    corsOrigins: string[];
    /** Operators' OIDC access tokens (what the Web UI passes with `codec.passAccessToken`) accepted too. */
    oidc?: { issuer: string; audience: string; claim?: { name: string; value: string } };
  };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  /** Port of the worker's own `/metrics` and `/healthz` server; undefined = none (the API serves `/metrics` anyway). */
  metricsPort?: number;
}

/** `local`: `DATA_DIR/files` served by the API. `s3`: an S3-compatible bucket (`STORAGE_URL=s3://bucket/prefix`). */
export type StorageConfig = {
  /** Payloads over this many bytes go to the store, history keeps a reference; 0 = off. */
  claimCheckThresholdBytes: number;
  /** How long claim-checked payloads are kept (at least the namespace's history retention). */
  claimCheckRetentionSeconds: number;
} & (
  | { kind: 'local' }
  | {
      kind: 's3';
      bucket: string;
      /** Key prefix without slashes at either end; '' = the bucket's root. */
      prefix: string;
      endpoint?: string;
      publicEndpoint?: string;
      publicBaseUrl?: string;
      forcePathStyle: boolean;
      region: string;
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    }
);

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
  if (e.TEMPORAL_TLS_SERVER_NAME && !tlsGiven && !e.TEMPORAL_API_KEY) {
    throw new ConfigError(
      'Invalid configuration:\n  TEMPORAL_TLS_SERVER_NAME only applies over TLS: set TEMPORAL_TLS_CA_PATH, the client certificate pair or TEMPORAL_API_KEY',
    );
  }
  if (Boolean(e.CODEC_OIDC_ISSUER) !== Boolean(e.CODEC_OIDC_AUDIENCE)) {
    throw new ConfigError('Invalid configuration:\n  CODEC_OIDC_ISSUER and CODEC_OIDC_AUDIENCE go together');
  }
  const tlsFile = (name: 'TEMPORAL_TLS_CERT_PATH' | 'TEMPORAL_TLS_KEY_PATH' | 'TEMPORAL_TLS_CA_PATH') =>
    e[name] === undefined ? undefined : readablePem(name, resolve(cwd, e[name]));
  return {
    http: {
      host: e.HOST,
      port: e.PORT,
      publicBaseUrl: e.PUBLIC_BASE_URL,
      maxBodyBytes: e.MAX_BODY_BYTES,
      trustProxy: e.TRUST_PROXY,
      redelivery: { perRequest: e.REDELIVER_RATE_PER_REQUEST, perOwner: e.REDELIVER_RATE_PER_OWNER },
    },
    apiKeys: e.API_KEYS,
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      apiKey: e.TEMPORAL_API_KEY,
      tls:
        tlsGiven || e.TEMPORAL_TLS_SERVER_NAME
          ? {
              certPath: tlsFile('TEMPORAL_TLS_CERT_PATH'),
              keyPath: tlsFile('TEMPORAL_TLS_KEY_PATH'),
              caPath: tlsFile('TEMPORAL_TLS_CA_PATH'),
              serverName: e.TEMPORAL_TLS_SERVER_NAME,
            }
          : undefined,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      devServerPort: e.TEMPORAL_PORT,
      devServerUiPort: e.TEMPORAL_UI_PORT,
      searchAttributes: e.TEMPORAL_SEARCH_ATTRIBUTES,
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
    webhook: {
      scheduleMs: e.WEBHOOK_SCHEDULE,
      attemptTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxPayloadBytes: e.WEBHOOK_MAX_PAYLOAD_BYTES,
      keysDir: resolve(cwd, e.WEBHOOK_KEYS_DIR ?? join(e.DATA_DIR, 'webhook-keys')),
    },
    egress: { allow: e.EGRESS_ALLOW },
    inputs: { maxBytes: e.INPUT_MAX_BYTES, timeoutMs: e.INPUT_TIMEOUT_MS },
    cogWebhook: { host: e.COG_WEBHOOK_HOST, port: e.COG_WEBHOOK_PORT, publicUrl: e.COG_WEBHOOK_URL },
    files: { expiresInSeconds: e.FILE_EXPIRATION_SECONDS, sweepEveryMs: e.FILE_SWEEP_INTERVAL_MS },
    storage: storageConfig(e),
    statusStream: { pollMs: e.STATUS_STREAM_POLL_MS, keepAliveMs: e.STATUS_STREAM_KEEPALIVE_MS },
    statusCacheRefreshMs: e.STATUS_CACHE_REFRESH_MS,
    codec: {
      encryptionKeys: e.PAYLOAD_ENCRYPTION_KEYS,
      authTokens: e.CODEC_AUTH_TOKENS,
      corsOrigins: e.CODEC_CORS_ORIGINS.map((origin) => new URL(origin).origin),
      oidc: e.CODEC_OIDC_ISSUER
        ? { issuer: e.CODEC_OIDC_ISSUER, audience: e.CODEC_OIDC_AUDIENCE!, claim: claimOf(e.CODEC_OIDC_CLAIM) }
        : undefined,
    },
    logLevel: e.LOG_LEVEL,
    metricsPort: e.METRICS_PORT,
  };
}

function claimOf(text: string | undefined): { name: string; value: string } | undefined {
  if (!text) return undefined;
  const at = text.indexOf('=');
  return { name: text.slice(0, at), value: text.slice(at + 1) };
}

function storageConfig(e: z.infer<typeof EnvSchema>): StorageConfig {
  const claimCheck = {
    claimCheckThresholdBytes: e.CLAIM_CHECK_THRESHOLD_BYTES,
    claimCheckRetentionSeconds: e.CLAIM_CHECK_RETENTION_SECONDS,
  };
  if (!e.STORAGE_URL || e.STORAGE_URL === 'local') return { kind: 'local', ...claimCheck };
  const url = new URL(e.STORAGE_URL);
  if (Boolean(e.AWS_ACCESS_KEY_ID) !== Boolean(e.AWS_SECRET_ACCESS_KEY)) {
    throw new ConfigError('Invalid configuration:\n  AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together');
  }
  return {
    kind: 's3',
    ...claimCheck,
    bucket: url.hostname,
    prefix: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
    endpoint: e.S3_ENDPOINT,
    publicEndpoint: e.S3_PUBLIC_ENDPOINT,
    publicBaseUrl: e.S3_PUBLIC_BASE_URL,
    // Custom endpoints (SeaweedFS, MinIO, ...) rarely resolve bucket host names; AWS prefers virtual hosts.
    forcePathStyle: e.S3_FORCE_PATH_STYLE
      ? e.S3_FORCE_PATH_STYLE === 'true' || e.S3_FORCE_PATH_STYLE === '1'
      : !!e.S3_ENDPOINT,
    region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
    credentials:
      e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: e.AWS_ACCESS_KEY_ID,
            secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
            sessionToken: e.AWS_SESSION_TOKEN,
          }
        : undefined,
  };
}

/**
 * A TLS file must exist and hold PEM when the process starts, not when the first connection is
 * made: the message names the variable, so a wrong mount is obvious.
 */
function readablePem(name: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: cannot read ${path} (${(err as Error).message})`);
  }
  if (!text.includes('-----BEGIN ')) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: ${path} is not a PEM file (no "-----BEGIN" line)`);
  }
  return path;
}

/** The base URL clients reach the API at, when none is configured. */
export function defaultPublicBaseUrl(config: Pick<Config, 'http'>): string {
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  return config.http.publicBaseUrl ?? `http://${host}:${config.http.port}`;
}
