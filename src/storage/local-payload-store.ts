import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PayloadStore, SweepResult } from './file-store';
import { modifiedBefore, readdirOrEmpty, sweepEach } from './sweep';

/** Claim-checked payloads as files `<dir>/<sha256>`, written to a temporary name and renamed. */
export class LocalPayloadStore implements PayloadStore {
  constructor(private readonly dir: string) {}

  async put(sha256: string, data: Uint8Array): Promise<void> {
    assertSha(sha256);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${sha256}.${randomUUID()}`);
    await writeFile(tmp, data);
    await rename(tmp, join(this.dir, sha256));
  }

  async get(sha256: string): Promise<Buffer | undefined> {
    assertSha(sha256);
    try {
      return await readFile(join(this.dir, sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  describe(sha256: string): string {
    return `file://${join(this.dir, sha256)}`;
  }

  async sweep(olderThanSeconds: number, now: number = Date.now()): Promise<SweepResult> {
    const cutoff = now - olderThanSeconds * 1000;
    return sweepEach(
      await readdirOrEmpty(this.dir),
      (name) => modifiedBefore(join(this.dir, name), cutoff),
      (name) => rm(join(this.dir, name), { force: true }),
    );
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

function assertSha(sha256: string): void {
  if (!SHA256.test(sha256)) throw new Error(`not a SHA-256 hex digest: ${sha256.slice(0, 80)}`);
}
