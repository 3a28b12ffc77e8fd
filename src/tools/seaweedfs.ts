import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { spawnService, type ServiceProcess } from '../cluster/service-process';
import { ensureGoBinary, GoBuildMode } from './go-binary';

/**
 * The SeaweedFS build the tests use as a real S3-compatible store. Its `go.mod` has `replace` directives, so it is
 * built as the main module (a plain `go install` is refused); a cold build takes minutes and about 220 MB.
 */
export const SEAWEEDFS = {
  name: 'weed',
  modulePath: 'github.com/seaweedfs/seaweedfs',
  version: 'v0.0.0-20261109003541-7506e5f91cd6',
  pkg: './weed',
  mode: GoBuildMode.MainModule,
} as const;

/**
 * Path of the pinned `weed` binary, built once into the per-user cache (see `ensureGoBinary`). `SEAWEEDFS_PATH`
 * points at an existing binary instead.
 */
export async function ensureSeaweedFs(
  log: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (env.SEAWEEDFS_PATH) return env.SEAWEEDFS_PATH;
  // The test setup could not build it: say why, in every suite that needs it.
  if (env.SEAWEEDFS_ERROR) throw new Error(`SeaweedFS is not available: ${env.SEAWEEDFS_ERROR}`);
  return ensureGoBinary({ ...SEAWEEDFS, env, log });
}

/** HTTP ports of `weed mini`'s parts; each one's gRPC port is the HTTP port + 10000, so both must be free. */
export interface SeaweedFsPorts {
  master: number;
  volume: number;
  filer: number;
  s3: number;
  admin: number;
}

/** An S3 key pair; in the store's environment it turns authentication on. */
export interface S3Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What {@link startSeaweedFs} starts. */
export interface StartSeaweedFsOptions {
  /** The `weed` binary ({@link ensureSeaweedFs}). */
  binary: string;
  /** Data directory; a second start on the same one keeps the buckets and objects. */
  dir: string;
  ports: SeaweedFsPorts;
  keys: S3Keys;
  /** Buckets to create (or keep) before the store counts as ready. */
  buckets?: readonly string[];
  /**
   * Bound on waiting for the S3 API to answer; a loaded 2-core machine starts it slowly.
   * @default 120_000
   */
  readyTimeoutMs?: number;
  /** Receives every line the store prints (prefixed with `[seaweedfs] `). */
  log?: (line: string) => void;
  /** Appends the store's output to this file. */
  logFile?: string;
}

/** A running `weed mini`, from {@link startSeaweedFs}. */
export interface RunningSeaweedFs {
  /** The S3 endpoint, e.g. `http://127.0.0.1:8333`. */
  endpoint: string;
  /** An SDK client with the store's keys (path-style, `us-east-1`). */
  client: S3Client;
  process: ServiceProcess;
  /** The last lines the store printed. */
  output(): string;
  /** SIGTERM (SIGKILL after 15 s); resolves once it has exited. */
  stop(): Promise<void>;
}

/** The region the SDK signs with for SeaweedFS, which accepts any. */
export const SEAWEEDFS_REGION = 'us-east-1';

/**
 * Starts SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) on 127.0.0.1 only, waits until
 * its S3 API answers an authenticated call, and creates `buckets`. It is killed with this process if this process
 * exits first.
 */
export async function startSeaweedFs(options: StartSeaweedFsOptions): Promise<RunningSeaweedFs> {
  const { ports } = options;
  await mkdir(options.dir, { recursive: true });
  const proc = spawnService({
    name: 'seaweedfs',
    command: options.binary,
    args: [
      'mini',
      `-dir=${options.dir}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-master.port=${ports.master}`,
      `-volume.port=${ports.volume}`,
      `-filer.port=${ports.filer}`,
      `-s3.port=${ports.s3}`,
      `-admin.port=${ports.admin}`,
      // Extra listeners we do not use, each another port that could clash.
      '-admin.port.legacy=0',
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      '-webdav=false',
      '-admin.ui=false',
      '-master.telemetry=false',
    ],
    cwd: options.dir,
    env: { AWS_ACCESS_KEY_ID: options.keys.accessKeyId, AWS_SECRET_ACCESS_KEY: options.keys.secretAccessKey },
    log: options.log,
    logFile: options.logFile,
  });
  const endpoint = `http://127.0.0.1:${ports.s3}`;
  const client = new S3Client({ endpoint, region: SEAWEEDFS_REGION, forcePathStyle: true, credentials: options.keys });
  const stop = async () => {
    client.destroy();
    await proc.stop(15_000);
  };
  try {
    await waitReady(client, proc, options.readyTimeoutMs ?? 120_000);
    for (const bucket of options.buckets ?? []) await ensureBucket(client, bucket);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, client, process: proc, output: () => proc.output(), stop };
}

/** Creates `bucket`, or keeps it when it is already there. */
export async function ensureBucket(client: S3Client, bucket: string): Promise<void> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    // By name, not instanceof: jest loads the SDK once per test file.
    const name = (err as Error).name;
    if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
    throw err;
  }
}

async function waitReady(client: S3Client, proc: ServiceProcess, timeoutMs: number): Promise<void> {
  // Ready in about 4 s on an idle machine; the bound is for a loaded one and fails with the store's own words.
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  void proc.exited.then((how) => (exited = how));
  for (;;) {
    if (exited !== undefined) throw new Error(`weed mini exited (${exited}):\n${proc.output()}`);
    try {
      await client.send(new ListBucketsCommand({}));
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(
          `SeaweedFS did not answer within ${timeoutMs / 1000} s (${(err as Error).message}):\n${proc.output()}`,
        );
      }
    }
    await sleep(250);
  }
}

/** Ports for a store of its own: random ones P with P and P + 10000 both free on 127.0.0.1. */
export async function freeSeaweedFsPorts(): Promise<SeaweedFsPorts> {
  const ports: number[] = [];
  while (ports.length < 5) {
    const port = 20_000 + Math.floor(Math.random() * 35_000);
    if (ports.includes(port) || ports.includes(port + 10_000) || ports.includes(port - 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) ports.push(port);
  }
  const [master, volume, filer, s3, admin] = ports as [number, number, number, number, number];
  return { master, volume, filer, s3, admin };
}

/**
 * Fixed ports from the S3 port up (`s3`, `s3 + 1`, ... `s3 + 4`, gRPC 10000 above each), for a store whose presigned
 * URLs must stay valid across restarts (`npm run cluster`).
 */
export function seaweedFsPortsFrom(s3: number): SeaweedFsPorts {
  return { s3, master: s3 + 1, volume: s3 + 2, filer: s3 + 3, admin: s3 + 4 };
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
