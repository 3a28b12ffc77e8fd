import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  await globalThis.__TEMPORAL_CLUSTER__?.stop();
  await globalThis.__CLUSTER_STORE__?.stop();
  // Kept when a run fails on CI and someone wants to read the server's and the processes' logs.
  if (process.env.CLUSTER_TMP_DIR && !process.env.KEEP_CLUSTER_DIR) {
    rmSync(process.env.CLUSTER_TMP_DIR, { recursive: true, force: true });
  }
}
