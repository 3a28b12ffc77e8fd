import type { FileStore } from '../storage/file-store';

// One typed input object per activity, even an empty one, so fields can be added without breaking callers.
export type SweepExpiredFilesInput = Record<string, never>;

export interface SweepResult {
  deleted: number;
  kept: number;
}

/** Builds the `sweepExpiredFiles` activity: deletes expired files (and lapsed upload slots) from the store. */
export function createSweepExpiredFiles(fileStore: FileStore) {
  return async function sweepExpiredFiles(_input: SweepExpiredFilesInput): Promise<SweepResult> {
    return fileStore.sweepExpired();
  };
}
