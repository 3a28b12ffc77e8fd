import { z } from 'zod';
import { parseEncryptionKeys } from '../codec/encryption';
import { parseEgressAllow } from '../egress/policy';
import {
  ApiKeys,
  commaList,
  flag,
  FLAG_VALUES,
  nonNegativeInt,
  optionalString,
  parsedWith,
  port,
  positiveInt,
  RateSpec,
  Schedule,
  TrustProxy,
} from './parsers';

/** Default API key for local use; the server warns at start while it is in use. */
export const LOCAL_DEV_KEY = 'local:local-secret';

const DEFAULT_WEBHOOK_SCHEDULE = '0s,5s,5m,30m,2h,5h,10h,14h,20h,24h';

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
  TEMPORAL_SEARCH_ATTRIBUTES: flag('true'),
  TEMPORAL_EAGER_START: flag('false'),

  DATA_DIR: z.string().default('.data'),
  MODELS_FILE: z.string().default('models.json'),

  WORKER_CONTROL: flag('true'),
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
  // A request's history is about a dozen events; while a long line waits nearly every run leaves the cache anyway, so a
  // large one only holds heap (docs/performance.md: 100 drained 10,000 waiting 22 % faster than 1,000, with a flat worker).
  WORKER_MAX_CACHED_WORKFLOWS: positiveInt.default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt.default(40),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt.default(100),

  WEBHOOK_SCHEDULE: Schedule.prefault(DEFAULT_WEBHOOK_SCHEDULE),
  WEBHOOK_TIMEOUT_MS: positiveInt.default(15_000),
  WEBHOOK_LOCAL_ATTEMPTS: nonNegativeInt.default(8),
  WEBHOOK_MAX_PAYLOAD_BYTES: positiveInt.default(1024 * 1024),
  WEBHOOK_KEYS_DIR: optionalString,
  EGRESS_ALLOW: parsedWith(parseEgressAllow),

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
  S3_FORCE_PATH_STYLE: z.enum(FLAG_VALUES).optional(),
  AWS_REGION: optionalString,
  AWS_DEFAULT_REGION: optionalString,
  AWS_ACCESS_KEY_ID: optionalString,
  AWS_SECRET_ACCESS_KEY: optionalString,
  AWS_SESSION_TOKEN: optionalString,
  CLAIM_CHECK_THRESHOLD_BYTES: nonNegativeInt.default(128 * 1024),
  CLAIM_CHECK_RETENTION_SECONDS: positiveInt.default(30 * 86_400),

  FILE_EXPIRATION_SECONDS: nonNegativeInt.default(604_800),
  FILE_SWEEP_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000),
  STATUS_STREAM_POLL_MS: positiveInt.default(500),
  STATUS_STREAM_KEEPALIVE_MS: positiveInt.max(10_000).default(5_000),
  STATUS_CACHE_REFRESH_MS: nonNegativeInt.default(500),

  METRICS_PORT: optionalString.pipe(z.coerce.number<string | undefined>().int().min(0).max(65535).optional()),

  PAYLOAD_ENCRYPTION_KEYS: parsedWith(parseEncryptionKeys),
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

/** The environment as {@link EnvSchema} parses it, before `loadConfig` groups it into a `Config`. */
export type Env = z.infer<typeof EnvSchema>;
