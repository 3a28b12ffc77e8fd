import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

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
 * Where output files and uploads live. Two implementations: {@link LocalFileStore} (a directory, served by the API;
 * the default) and `S3FileStore` (any S3-compatible object store; see `./s3-file-store`). The API, the control
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
  sweepExpired(now?: number): Promise<{ deleted: number; kept: number }>;
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
  sweep(olderThanSeconds: number, now?: number): Promise<{ deleted: number; kept: number }>;
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

/** Metadata kept beside each file so the API can serve it with the right headers. */
interface FileMeta {
  contentType: string;
  fileName: string;
  createdAt: string;
  /** After this instant the file is not served and the sweeper deletes its folder. For a pending upload: its deadline. */
  expiresAt?: string;
  /** Present while the file waits for its upload PUT. */
  upload?: { tokenSha256: string; expiresInSeconds?: number };
}

// Ids are our own UUIDs and names are sanitised, so a path can never leave the store's directory.
const SAFE_NAME = /^[A-Za-z0-9._-]{1,200}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const META = 'meta.json';
const DEFAULT_UPLOAD_WINDOW_SECONDS = 3600;
/** A folder without readable metadata this old is debris of a crash mid-write. */
const ORPHAN_AFTER_MS = 3_600_000;

/**
 * Files on local disk under `dir/<id>/`, served by the API at `<publicBaseUrl>/files/<id>/<name>`.
 * Workers and the API must see the same directory (one host, or a shared volume). Every file may
 * carry an expiry: from then on it is not served, and {@link LocalFileStore.sweepExpired} deletes it.
 */
export class LocalFileStore implements FileStore {
  readonly kind = 'local' as const;
  readonly payloads: PayloadStore;

  constructor(
    private readonly dir: string,
    private readonly publicBaseUrl: string,
    private readonly options: FileStoreOptions = {},
  ) {
    this.payloads = new LocalPayloadStore(options.payloadsDir ?? join(dir, '..', 'payloads'));
  }

  /**
   * Any URL whose path is `/files/{id}/{name}` of a file in this directory: the id is a random UUID, so whoever holds
   * such a URL could fetch the same bytes from the API; reading them here saves the runner a trip through the egress
   * guard (which refuses the API's private address) and works with any host name the client used.
   */
  async readByUrl(url: string): Promise<StoreFile | undefined> {
    let path: string;
    try {
      path = new URL(url).pathname;
    } catch {
      return undefined;
    }
    const match = /^\/files\/([0-9a-f-]{36})\/([^/]+)$/.exec(path);
    if (!match) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(match[2]!);
    } catch {
      return undefined;
    }
    const file = await this.read(match[1]!, name);
    return file && { data: file.data, contentType: file.contentType };
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  async save(
    file: { data: Buffer; contentType: string; fileName: string },
    lifecycle: Lifecycle = {},
  ): Promise<StoredFile> {
    const id = randomUUID();
    const fileName = sanitiseName(file.fileName);
    const folder = join(this.dir, id);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, fileName), file.data);
    const now = this.now();
    await writeMeta(folder, {
      contentType: file.contentType,
      fileName,
      createdAt: new Date(now).toISOString(),
      expiresAt: this.expiryFrom(now, lifecycle),
    });
    return {
      url: this.urlOf(id, fileName),
      content_type: file.contentType,
      file_name: fileName,
      file_size: file.data.length,
    };
  }

  /** Reads a stored file, or returns undefined when there is none by that id and name (or it has expired). */
  async read(id: string, fileName: string): Promise<FileContent | undefined> {
    const meta = await this.readMeta(id);
    if (!meta || meta.upload || meta.fileName !== fileName || !SAFE_NAME.test(fileName)) return undefined;
    const expiresAt = meta.expiresAt ? new Date(meta.expiresAt) : undefined;
    if (expiresAt && expiresAt.getTime() <= this.now()) return undefined;
    const path = join(this.dir, id, fileName);
    try {
      if (!(await stat(path)).isFile()) return undefined;
      return { data: await readFile(path), contentType: meta.contentType, expiresAt };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Reserves a file to be uploaded with {@link completeUpload}: its URL is known at once, it is served
   * only once the bytes are in, and the reservation lapses after the upload window.
   * @param baseUrl base of the file URL, when it differs from the store's (the API answers with how it was reached).
   */
  async reserveUpload(
    file: { contentType: string; fileName: string },
    lifecycle: Lifecycle = {},
    baseUrl?: string,
  ): Promise<UploadReservation> {
    const id = randomUUID();
    const fileName = sanitiseName(file.fileName);
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    const uploadExpiresAt = new Date(now + (this.options.uploadWindowSeconds ?? DEFAULT_UPLOAD_WINDOW_SECONDS) * 1000);
    const folder = join(this.dir, id);
    await mkdir(folder, { recursive: true });
    await writeMeta(folder, {
      contentType: file.contentType,
      fileName,
      createdAt: new Date(now).toISOString(),
      expiresAt: uploadExpiresAt.toISOString(),
      upload: { tokenSha256: sha256(token), expiresInSeconds: lifecycle.expiresInSeconds },
    });
    return { fileId: id, fileName, token, fileUrl: this.urlOf(id, fileName, baseUrl), uploadExpiresAt };
  }

  /**
   * Stores the bytes of a reserved upload, streaming them to disk and refusing more than `maxBytes`.
   * The reservation is used up by the first upload that completes; the file's lifetime starts then.
   */
  async completeUpload(id: string, token: string, body: Readable, maxBytes: number): Promise<StoredFile> {
    const pending = await this.pendingUpload(id, token);
    const folder = join(this.dir, id);
    const partial = join(folder, `.part-${randomUUID()}`);
    let size = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > maxBytes) {
          callback(new UploadRejectedError('too_large', `The upload is larger than the ${maxBytes} bytes allowed`));
        } else callback(null, chunk);
      },
    });
    try {
      await pipeline(body, limit, createWriteStream(partial));
      // A concurrent PUT with the same token may have won while this one streamed.
      const meta = await this.pendingUpload(id, token);
      await rename(partial, join(folder, meta.fileName));
      const now = this.now();
      await writeMeta(folder, {
        contentType: meta.contentType,
        fileName: meta.fileName,
        createdAt: meta.createdAt,
        expiresAt: this.expiryFrom(now, { expiresInSeconds: meta.upload?.expiresInSeconds }),
      });
    } finally {
      await rm(partial, { force: true });
    }
    return {
      url: this.urlOf(id, pending.fileName),
      content_type: pending.contentType,
      file_name: pending.fileName,
      file_size: size,
    };
  }

  /**
   * Deletes every file whose expiry has passed (and lapsed upload reservations), bytes and all.
   * Safe to run from several processes at once: a folder already gone is simply skipped.
   */
  async sweepExpired(now: number = this.now()): Promise<{ deleted: number; kept: number }> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { deleted: 0, kept: 0 };
      throw err;
    }
    let deleted = 0;
    let kept = 0;
    for (const id of entries) {
      if (!UUID.test(id)) continue;
      const meta = await this.readMeta(id).catch(() => undefined);
      const expired = meta
        ? meta.expiresAt !== undefined && Date.parse(meta.expiresAt) <= now
        : await olderThan(join(this.dir, id), now - ORPHAN_AFTER_MS);
      if (expired) {
        await rm(join(this.dir, id), { recursive: true, force: true });
        deleted++;
      } else kept++;
    }
    if (this.options.payloadRetentionSeconds) {
      const payloads = await this.payloads.sweep(this.options.payloadRetentionSeconds, now);
      deleted += payloads.deleted;
      kept += payloads.kept;
    }
    return { deleted, kept };
  }

  private urlOf(id: string, fileName: string, baseUrl: string = this.publicBaseUrl): string {
    return `${baseUrl.replace(/\/+$/, '')}/files/${id}/${encodeURIComponent(fileName)}`;
  }

  private expiryFrom(now: number, lifecycle: Lifecycle): string | undefined {
    const seconds = lifecycle.expiresInSeconds ?? this.options.defaultExpiresInSeconds;
    return seconds ? new Date(now + seconds * 1000).toISOString() : undefined;
  }

  private async readMeta(id: string): Promise<FileMeta | undefined> {
    if (!UUID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.dir, id, META), 'utf8')) as FileMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** The reservation `token` opens, or the reason it opens nothing (an unknown id and a wrong token look alike). */
  private async pendingUpload(id: string, token: string): Promise<FileMeta> {
    const meta = await this.readMeta(id);
    const live = meta?.expiresAt === undefined || Date.parse(meta.expiresAt) > this.now();
    if (!meta || !live) throw new UploadRejectedError('not_found', 'No such upload, or its URL has expired');
    if (!meta.upload) {
      // Only someone holding the file's own URL learns this much; it says nothing about the token.
      throw new UploadRejectedError('already_uploaded', 'This file has already been uploaded');
    }
    const expected = Buffer.from(meta.upload.tokenSha256, 'hex');
    const given = Buffer.from(sha256(token), 'hex');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new UploadRejectedError('not_found', 'No such upload, or its URL has expired');
    }
    return meta;
  }
}

/** Claim-checked payloads as files `<dir>/<sha256>`, written to a temporary name and renamed. */
class LocalPayloadStore implements PayloadStore {
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

  async sweep(olderThanSeconds: number, now: number = Date.now()): Promise<{ deleted: number; kept: number }> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { deleted: 0, kept: 0 };
      throw err;
    }
    let deleted = 0;
    let kept = 0;
    for (const name of entries) {
      if (await olderThan(join(this.dir, name), now - olderThanSeconds * 1000)) {
        await rm(join(this.dir, name), { force: true });
        deleted++;
      } else kept++;
    }
    return { deleted, kept };
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

function assertSha(sha256: string): void {
  if (!SHA256.test(sha256)) throw new Error(`not a SHA-256 hex digest: ${sha256.slice(0, 80)}`);
}

/** Replaces the metadata in one step, so a reader never sees half of it. */
async function writeMeta(folder: string, meta: FileMeta): Promise<void> {
  const tmp = join(folder, `.${META}.${randomUUID()}`);
  await writeFile(tmp, JSON.stringify(meta));
  await rename(tmp, join(folder, META));
}

async function olderThan(path: string, cutoff: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs < cutoff;
  } catch {
    return false;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function sanitiseName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '');
  const bounded = cleaned.slice(-200);
  return bounded.length > 0 && bounded !== META ? bounded : 'file';
}
