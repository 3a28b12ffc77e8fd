import type { LogLevel } from '../workflows/shared/request';
import type { StoredFile } from '../storage/file-store';

/** What a model runner may do besides computing: log, store files, fetch inputs, notice cancellation. */
export interface ModelContext {
  requestId: string;
  /** Aborted when the request is cancelled (or the activity times out); runners stop promptly. */
  signal: AbortSignal;
  /** Appends a line to the request's logs (visible with `logs=1` while the run goes on). */
  log(message: string, level?: LogLevel): void;
  /** Stores an output file and returns its public description (`url`, `content_type`, ...). */
  saveFile(file: { data: Buffer; contentType: string; fileName: string }): Promise<StoredFile>;
  /** Fetches a `*_url` input: a data URI or an http(s) URL, bounded in size. */
  fetchInput(url: string): Promise<FetchedInput>;
}

export interface FetchedInput {
  data: Buffer;
  contentType: string;
}

/** A model backend: validates its own input (throwing {@link InputValidationError}) and runs it. */
export interface ModelRunner {
  run(input: unknown, ctx: ModelContext): Promise<unknown>;
}
