import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  ensureBucket,
  ensureSeaweedFs,
  freeSeaweedFsPorts,
  SEAWEEDFS_REGION,
  startSeaweedFs as startStore,
} from '../../src/tools/seaweedfs';

/** The fixed key pair the test store runs with; setting it in the store's environment turns authentication on. */
export const S3_TEST_KEYS = { accessKeyId: 'fal-queue-test', secretAccessKey: 'fal-queue-test-secret' } as const;

export interface SeaweedFs {
  /** The S3 endpoint, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** An SDK client with the test keys. */
  client: S3Client;
  /** Creates a bucket and returns the environment that points the queue at it (`STORAGE_URL`, keys, endpoint). */
  bucket(name: string, prefix?: string): Promise<Record<string, string>>;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts SeaweedFS (`src/tools/seaweedfs.ts`) on loopback ports of its own, with a throwaway data directory and the
 * test keys.
 */
export async function startSeaweedFs(): Promise<SeaweedFs> {
  const store = await startStore({
    binary: await ensureSeaweedFs((line) => console.log(line)),
    dir: mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'seaweedfs-')),
    ports: await freeSeaweedFsPorts(),
    keys: S3_TEST_KEYS,
  });
  return {
    endpoint: store.endpoint,
    client: store.client,
    async bucket(name, prefix = '') {
      await ensureBucket(store.client, name);
      return {
        STORAGE_URL: `s3://${name}${prefix ? `/${prefix}` : ''}`,
        S3_ENDPOINT: store.endpoint,
        AWS_REGION: SEAWEEDFS_REGION,
        AWS_ACCESS_KEY_ID: S3_TEST_KEYS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_KEYS.secretAccessKey,
      };
    },
    output: store.output,
    stop: store.stop,
  };
}
