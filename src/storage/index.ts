import { join } from 'node:path';
import type { Config } from '../config';
import type { FileStore } from './file-store';
import { LocalFileStore } from './local-file-store';
import { S3FileStore } from './s3-file-store';

export * from './file-store';
export { LocalFileStore } from './local-file-store';
export { S3FileStore, type S3StoreOptions } from './s3-file-store';
export type { S3Location } from './s3-location';

/**
 * The file store the configuration names (`STORAGE_URL`): `local` = `DATA_DIR/files` with file URLs under
 * `publicBaseUrl` (served by the API), `s3` = the bucket. One per process; the API, the control worker and every
 * runner must name the same store.
 */
export function createFileStore(
  config: Pick<Config, 'storage' | 'dataDir' | 'files'>,
  publicBaseUrl: string,
): FileStore {
  const common = {
    defaultExpiresInSeconds: config.files.expiresInSeconds,
    payloadRetentionSeconds: config.storage.claimCheckRetentionSeconds,
  };
  const storage = config.storage;
  if (storage.kind === 'local') {
    return new LocalFileStore(join(config.dataDir, 'files'), publicBaseUrl, {
      ...common,
      payloadsDir: join(config.dataDir, 'payloads'),
    });
  }
  return new S3FileStore({
    ...common,
    bucket: storage.bucket,
    prefix: storage.prefix,
    endpoint: storage.endpoint,
    publicEndpoint: storage.publicEndpoint,
    publicBaseUrl: storage.publicBaseUrl,
    forcePathStyle: storage.forcePathStyle,
    region: storage.region,
    credentials: storage.credentials,
  });
}
