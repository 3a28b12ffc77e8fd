import type { S3Location } from '../storage/s3-location';
import { ConfigError } from './config-error';
import type { Env } from './env';

/** `local`: `DATA_DIR/files` served by the API. `s3`: an S3-compatible bucket (`STORAGE_URL=s3://bucket/prefix`). */
export type StorageConfig = {
  /** Payloads over this many bytes go to the store, history keeps a reference; 0 = off. */
  claimCheckThresholdBytes: number;
  /** How long claim-checked payloads are kept (at least the namespace's history retention). */
  claimCheckRetentionSeconds: number;
} & ({ kind: 'local' } | ({ kind: 's3' } & S3Location));

/** The `storage` part of the config: `STORAGE_URL`, the `S3_*` and `AWS_*` variables and the claim check. */
export function storageConfig(e: Env): StorageConfig {
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
