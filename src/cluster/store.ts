/**
 * The cluster's object store: SeaweedFS on loopback (data and a generated key pair kept in the cluster's data
 * directory), or the caller's own S3 when `STORAGE_URL` names one. Every one of our processes gets the same
 * settings under docker-compose.yml's names.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  ensureSeaweedFs,
  SEAWEEDFS_REGION,
  startSeaweedFs,
  type RunningSeaweedFs,
  type S3Keys,
  type SeaweedFsPorts,
} from '../tools/seaweedfs';

/**
 * The store settings every one of our processes gets, under docker-compose.yml's `x-app-env` names
 * (test/ops/compose.test.ts checks they match); '' = unset.
 */
export const CLUSTER_STORE_ENV = [
  'STORAGE_URL',
  'S3_ENDPOINT',
  'S3_PUBLIC_ENDPOINT',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
] as const;
export type ClusterStoreEnv = Record<(typeof CLUSTER_STORE_ENV)[number], string>;

/** The object store our processes share: see {@link startClusterStore}. */
export interface ClusterStore {
  env: ClusterStoreEnv;
  /** The SeaweedFS we started; undefined when the caller named a store (`STORAGE_URL`). */
  seaweedfs?: RunningSeaweedFs;
  stop(): Promise<void>;
}

/** Bucket and key prefix of the cluster's store, as docker-compose.yml names them. */
const DEFAULT_BUCKET = 'fal-queue';
const STORE_PREFIX = 'queue';

/** What {@link startClusterStore} starts. */
export interface ClusterStoreOptions {
  /** The cluster's data directory: SeaweedFS keeps its data (and a generated key pair) under it. */
  dataDir: string;
  /** With `STORAGE_URL` set, the caller's store is used and nothing is started. */
  env: Record<string, string | undefined>;
  ports: SeaweedFsPorts;
  log: (line: string) => void;
  /** Receives every line SeaweedFS prints; omitted = only its log file gets them. */
  processLog?: (line: string) => void;
}

/** What the cluster's SeaweedFS is set up with, from the names docker-compose.yml reads for its `seaweedfs`. */
export interface ClusterStoreSettings {
  /** `S3_BUCKET`, created on start. @default fal-queue */
  bucket: string;
  /** `S3_ACCESS_KEY_ID` and `S3_SECRET_ACCESS_KEY`; undefined = generated once and kept in the data directory. */
  keys?: S3Keys;
  /** `S3_PUBLIC_ENDPOINT`; '' = the endpoint our processes use. */
  publicEndpoint: string;
}

/** Reads {@link ClusterStoreSettings} from the environment. */
export function clusterStoreSettings(env: Record<string, string | undefined>): ClusterStoreSettings {
  return {
    bucket: env.S3_BUCKET || DEFAULT_BUCKET,
    keys:
      env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY
        ? { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }
        : undefined,
    publicEndpoint: env.S3_PUBLIC_ENDPOINT ?? '',
  };
}

/** The store settings of our processes for a SeaweedFS at `endpoint` set up with `settings` and `keys`. */
export function seaweedFsStoreEnv(settings: ClusterStoreSettings, endpoint: string, keys: S3Keys): ClusterStoreEnv {
  return {
    STORAGE_URL: `s3://${settings.bucket}/${STORE_PREFIX}`,
    S3_ENDPOINT: endpoint,
    S3_PUBLIC_ENDPOINT: settings.publicEndpoint,
    AWS_REGION: SEAWEEDFS_REGION,
    AWS_ACCESS_KEY_ID: keys.accessKeyId,
    AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
  };
}

/**
 * The object store of the cluster. With `STORAGE_URL` in `env` it is the caller's (an external S3; their S3_* and
 * AWS_* settings are passed on as they are). Otherwise it is SeaweedFS on 127.0.0.1 with its data in
 * `dataDir/seaweedfs`, set up by {@link clusterStoreSettings}; a key pair it generates is kept in
 * `dataDir/seaweedfs-keys.json`, so a second start reuses data and keys.
 */
export async function startClusterStore(options: ClusterStoreOptions): Promise<ClusterStore> {
  const e = options.env;
  if (e.STORAGE_URL) return { env: callerStoreEnv(e), stop: async () => undefined };
  const dataDir = resolve(options.dataDir);
  const settings = clusterStoreSettings(e);
  const keys = settings.keys ?? (await persistedKeys(join(dataDir, 'seaweedfs-keys.json')));
  const seaweedfs = await startSeaweedFs({
    binary: await ensureSeaweedFs(options.log, e as NodeJS.ProcessEnv),
    dir: join(dataDir, 'seaweedfs'),
    ports: options.ports,
    keys,
    buckets: [settings.bucket],
    log: options.processLog,
    logFile: join(dataDir, 'logs', 'seaweedfs.log'),
  });
  options.log(`[cluster] SeaweedFS S3 ${seaweedfs.endpoint}, bucket ${settings.bucket} ready`);
  return { env: seaweedFsStoreEnv(settings, seaweedfs.endpoint, keys), seaweedfs, stop: () => seaweedfs.stop() };
}

/** The caller's own store settings under {@link CLUSTER_STORE_ENV}'s names ('' where unset: `local` by default). */
export function callerStoreEnv(env: Record<string, string | undefined>): ClusterStoreEnv {
  return Object.fromEntries(CLUSTER_STORE_ENV.map((name) => [name, env[name] ?? ''])) as ClusterStoreEnv;
}

/** The store's key pair, generated on first use and kept (owner-only) for later starts. */
async function persistedKeys(file: string): Promise<S3Keys> {
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as Partial<S3Keys>;
    if (saved.accessKeyId && saved.secretAccessKey) {
      return { accessKeyId: saved.accessKeyId, secretAccessKey: saved.secretAccessKey };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const keys = {
    accessKeyId: `fal-queue-${randomBytes(6).toString('hex')}`,
    secretAccessKey: randomBytes(24).toString('base64url'),
  };
  await mkdir(resolve(file, '..'), { recursive: true });
  await writeFile(file, `${JSON.stringify(keys)}\n`, { mode: 0o600 });
  return keys;
}
