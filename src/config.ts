/**
 * The service's configuration: {@link Config}, and {@link loadConfig} that builds it from the environment once at
 * start-up. The pieces live in `./config/` by role: the variables and their defaults (`env.ts`), the zod parsers
 * they use (`parsers.ts`), and the parts that check several variables together (`temporal.ts`, `storage.ts`).
 */
import { join, resolve } from 'node:path';
import type { Rate } from './api/rate-limit';
import type { EncryptionKey } from './codec/encryption';
import { ConfigError } from './config/config-error';
import { EnvSchema, type Env } from './config/env';
import { storageConfig, type StorageConfig } from './config/storage';
import { temporalConfig, type TemporalConfig } from './config/temporal';

export { ConfigError } from './config/config-error';
export { EnvSchema, LOCAL_DEV_KEY, type Env } from './config/env';
export { parseDuration } from './config/parsers';
export type { StorageConfig } from './config/storage';
export type { TemporalConfig } from './config/temporal';

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
  temporal: TemporalConfig;
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
    /** First attempts a worker makes as local activities at once, at most (`LocalAttemptGate`); 0 = none. */
    localAttempts: number;
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
  logLevel: Env['LOG_LEVEL'];
  /** Port of the worker's own `/metrics` and `/healthz` server; undefined = none (the API serves `/metrics` anyway). */
  metricsPort?: number;
}

/** Parses the environment once, at start-up. */
export function loadConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (Boolean(e.CODEC_OIDC_ISSUER) !== Boolean(e.CODEC_OIDC_AUDIENCE)) {
    throw new ConfigError('Invalid configuration:\n  CODEC_OIDC_ISSUER and CODEC_OIDC_AUDIENCE go together');
  }
  const temporal = temporalConfig(e, cwd);
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
    temporal,
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
      localAttempts: e.WEBHOOK_LOCAL_ATTEMPTS,
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

/** The base URL clients reach the API at, when none is configured. */
export function defaultPublicBaseUrl(config: Pick<Config, 'http'>): string {
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  return config.http.publicBaseUrl ?? `http://${host}:${config.http.port}`;
}
