import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sanitiseFileName } from './file-name';
import {
  UploadRejectedError,
  type FileContent,
  type FileStore,
  type FileStoreOptions,
  type Lifecycle,
  type PayloadStore,
  type StoreFile,
  type StoredFile,
  type SweepResult,
  type UploadReservation,
} from './file-store';
import { LocalPayloadStore } from './local-payload-store';
import { modifiedBefore, readdirOrEmpty, sweepEach, withPayloadSweep } from './sweep';

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
    const fileName = sanitiseFileName(file.fileName, META);
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
    const fileName = sanitiseFileName(file.fileName, META);
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
  async sweepExpired(now: number = this.now()): Promise<SweepResult> {
    const folders = (await readdirOrEmpty(this.dir)).filter((id) => UUID.test(id));
    const files = await sweepEach(
      folders,
      async (id) => {
        const meta = await this.readMeta(id).catch(() => undefined);
        return meta
          ? meta.expiresAt !== undefined && Date.parse(meta.expiresAt) <= now
          : modifiedBefore(join(this.dir, id), now - ORPHAN_AFTER_MS);
      },
      (id) => rm(join(this.dir, id), { recursive: true, force: true }),
    );
    return withPayloadSweep(files, this.payloads, this.options.payloadRetentionSeconds, now);
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

/** Replaces the metadata in one step, so a reader never sees half of it. */
async function writeMeta(folder: string, meta: FileMeta): Promise<void> {
  const tmp = join(folder, `.${META}.${randomUUID()}`);
  await writeFile(tmp, JSON.stringify(meta));
  await rename(tmp, join(folder, META));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
