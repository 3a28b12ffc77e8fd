import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { ensureSeaweedFs } from '../../src/tools/seaweedfs';

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
 * Starts SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) on loopback ports of its own,
 * with a throwaway data directory, and waits until its S3 API answers an authenticated call.
 */
export async function startSeaweedFs(): Promise<SeaweedFs> {
  const binary = await ensureSeaweedFs((line) => console.log(line));
  const dir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'seaweedfs-'));
  // gRPC listens on each HTTP port + 10000, so both must be free.
  const [master, volume, filer, s3, admin] = await freePortPairs(5);
  const args = [
    'mini',
    `-dir=${dir}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-master.port=${master}`,
    `-volume.port=${volume}`,
    `-filer.port=${filer}`,
    `-s3.port=${s3}`,
    `-admin.port=${admin}`,
    '-admin.port.legacy=0',
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    '-webdav=false',
    '-admin.ui=false',
    '-master.telemetry=false',
  ];
  const child = spawn(binary, args, {
    cwd: dir,
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: S3_TEST_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_TEST_KEYS.secretAccessKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const collect = (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const endpoint = `http://127.0.0.1:${s3}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_TEST_KEYS });
  await waitReady(client, child, () => out);
  return {
    endpoint,
    client,
    async bucket(name, prefix = '') {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return {
        STORAGE_URL: `s3://${name}${prefix ? `/${prefix}` : ''}`,
        S3_ENDPOINT: endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: S3_TEST_KEYS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_TEST_KEYS.secretAccessKey,
      };
    },
    output: () => out,
    async stop() {
      client.destroy();
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitReady(client: S3Client, child: ChildProcess, output: () => string): Promise<void> {
  // Ready in about 4 s on an idle machine; the bound is for a loaded one and fails with the store's own words.
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`weed mini exited with ${child.exitCode}:\n${output()}`);
    try {
      await client.send(new ListBucketsCommand({}));
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`SeaweedFS did not answer within 120 s (${(err as Error).message}):\n${output()}`);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Ports P with P and P + 10000 both free on 127.0.0.1. */
async function freePortPairs(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 35_000);
    if (ports.includes(port) || ports.includes(port + 10_000) || ports.includes(port - 10_000)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
