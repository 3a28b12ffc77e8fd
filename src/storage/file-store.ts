/**
 * The storage contract: what a file store and a payload store must do, and the shapes they exchange. The
 * implementations live beside it (`./local-file-store`, `./s3-file-store`); callers that only use a store import
 * from here, so they pull in neither the AWS SDK nor the local one's file handling.
 */
import type { Readable } from 'node:stream';

/** A stored file as fal describes it in outputs (`width`/`height` are added by image models). */
export interface StoredFile {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width?: number;
  height?: number;
}

export interface FileContent {
  data: Buffer;
  contentType: string;
  /** When the file stops being served; undefined = kept until deleted by hand. */
  expiresAt?: Date;
}

/** How long a stored file lives; fal's `expiration_duration_seconds`. Undefined = the store's default. */
export interface Lifecycle {
  expiresInSeconds?: number;
}

/** What a sweep did: entries deleted, and entries looked at but left in place. */
export interface SweepResult {
  deleted: number;
  kept: number;
}

/** A slot for a file the client will PUT (fal's `storage/upload/initiate`). */
export interface UploadReservation {
  fileId: string;
  fileName: string;
  /** Secret the PUT must present; the file's public URL does not reveal it. */
  token: string;
  /** Where the file will be served once uploaded. */
  fileUrl: string;
  /** When the upload URL stops working. */
  uploadExpiresAt: Date;
  /** Where the client PUTs the bytes, when that is the store itself (a presigned URL); undefined = the API. */
  uploadUrl?: string;
}

export interface FileStoreOptions {
  /** Lifetime of a file whose writer names none; undefined or 0 = kept until deleted by hand. */
  defaultExpiresInSeconds?: number;
  /**
   * How long an upload URL stays usable; a reservation never uploaded is swept after it.
   * @default 3600
   */
  uploadWindowSeconds?: number;
  /** The clock that expiries are set and checked by (tests move one by hand). @default Date.now */
  now?: () => number;
  /**
   * Directory of the claim-checked payloads.
   * @default `<dir>/../payloads`
   */
  payloadsDir?: string;
  /** Claim-checked payloads older than this are deleted by the sweep; undefined = kept. */
  payloadRetentionSeconds?: number;
}

/** Thrown by `readByUrl` when a URL names a file of the store that is not there (or has expired). */
export class StoreFileMissingError extends Error {
  override name = 'StoreFileMissingError';
}

/** A file a runner asked for by URL, read straight from the store (no HTTP, no egress check). */
export interface StoreFile {
  data: Buffer;
  contentType: string;
}

/**
 * Where output files and uploads live. Two implementations: `LocalFileStore` (a directory, served by the API;
 * the default; see `./local-file-store`) and `S3FileStore` (any S3-compatible object store; see `./s3-file-store`). The API, the control
 * worker and the model runners must all use the same store.
 */
export interface FileStore {
  /** `local` or `s3`, for logs and for the API's choice of upload route. */
  readonly kind: 'local' | 's3';
  /** Stores an output file and describes it as fal does (`url` is where clients fetch it). */
  save(file: { data: Buffer; contentType: string; fileName: string }, lifecycle?: Lifecycle): Promise<StoredFile>;
  /** A file served by the API's `/files/{id}/{name}` route; undefined when there is none (or it has expired). */
  read(id: string, fileName: string): Promise<FileContent | undefined>;
  /**
   * Reserves a file a client will upload (fal's `storage/upload/initiate`). With `uploadUrl` set the client PUTs
   * straight to the store (a presigned URL); without it, to the API's `/storage/upload/{fileId}?token=` route.
   */
  reserveUpload(
    file: { contentType: string; fileName: string },
    lifecycle?: Lifecycle,
    baseUrl?: string,
  ): Promise<UploadReservation>;
  /** Stores the bytes of an upload that goes through the API (stores without presigned uploads only). */
  completeUpload(id: string, token: string, body: Readable, maxBytes: number): Promise<StoredFile>;
  /** Deletes expired files and lapsed upload reservations; safe to run from several processes at once. */
  sweepExpired(now?: number): Promise<SweepResult>;
  /**
   * Reads the file one of this store's own URLs names (an output or an upload), or returns undefined when `url` is
   * not one. Runners use it for `*_url` inputs, so files in the store never go through the egress guard.
   */
  readByUrl(url: string): Promise<StoreFile | undefined>;
  /** Where claim-checked Temporal payloads are kept (see `src/codec/claim-check.ts`). */
  readonly payloads: PayloadStore;
}

/**
 * Content-addressed blobs for the claim check: the key is the payload's SHA-256, so writing the same payload twice
 * is harmless and a reference can be checked against what it names.
 */
export interface PayloadStore {
  put(sha256: string, data: Uint8Array): Promise<void>;
  /** The bytes, or undefined when there is no such blob (swept, or another store). */
  get(sha256: string): Promise<Buffer | undefined>;
  /** A readable location for the reference kept in history, e.g. `s3://bucket/prefix/payloads/<sha256>`. */
  describe(sha256: string): string;
  /** Deletes blobs written longer than `olderThanSeconds` ago. */
  sweep(olderThanSeconds: number, now?: number): Promise<SweepResult>;
}

/** Why an upload PUT was refused; the API maps `reason` to a status code. */
export class UploadRejectedError extends Error {
  override name = 'UploadRejectedError';
  constructor(
    readonly reason: 'not_found' | 'too_large' | 'already_uploaded',
    message: string,
  ) {
    super(message);
  }
}
