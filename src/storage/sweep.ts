import { readdir, stat } from 'node:fs/promises';
import type { PayloadStore, SweepResult } from './file-store';

/**
 * Deletes every entry `isExpired` picks and counts the rest. Entries are handled one at a time: a sweep runs beside
 * live traffic, and deleting a large store's backlog in parallel would compete with it for disk or API rate.
 */
export async function sweepEach<T>(
  entries: Iterable<T> | AsyncIterable<T>,
  isExpired: (entry: T) => boolean | Promise<boolean>,
  remove: (entry: T) => Promise<unknown>,
): Promise<SweepResult> {
  const result: SweepResult = { deleted: 0, kept: 0 };
  for await (const entry of entries) {
    if (await isExpired(entry)) {
      await remove(entry);
      result.deleted++;
    } else result.kept++;
  }
  return result;
}

/**
 * Adds the sweep of claim-checked payloads to a file sweep's counts, when a retention is configured. Stores sweep
 * both in one call so the single scheduled sweep activity covers payloads too.
 */
export async function withPayloadSweep(
  files: SweepResult,
  payloads: PayloadStore,
  retentionSeconds: number | undefined,
  now: number,
): Promise<SweepResult> {
  if (!retentionSeconds) return files;
  const swept = await payloads.sweep(retentionSeconds, now);
  return { deleted: files.deleted + swept.deleted, kept: files.kept + swept.kept };
}

/** The names in `dir`, or none when the directory does not exist yet (nothing was ever written to it). */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Whether the file or folder at `path` was last modified before `cutoff` (ms); a path already gone is not. */
export async function modifiedBefore(path: string, cutoff: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs < cutoff;
  } catch {
    return false;
  }
}
