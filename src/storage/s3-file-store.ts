import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
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
  StoreFileMissingError,
} from './file-store';
import { sanitiseFileName } from './file-name';
import type { S3Location } from './s3-location';
import { sweepEach, withPayloadSweep } from './sweep';

/** Where an {@link S3FileStore} keeps its objects, how it reaches them, and the lifetimes common to every store. */
export interface S3StoreOptions extends FileStoreOptions, S3Location {}

/** SigV4 presigned URLs live at most 7 days. */
const MAX_PRESIGN_SECONDS = 604_800;
const DEFAULT_UPLOAD_WINDOW_SECONDS = 3600;
const FILE_KEY = /^files\/(\d+)\/([0-9a-f-]{36})\/([A-Za-z0-9._-]{1,200})$/;

/**
 * Files and claim-checked payloads in an S3-compatible bucket, through the AWS SDK v3.
 *
 * Layout under the prefix: `files/<lifetimeSeconds>/<uuid>/<name>` and `payloads/<sha256>`. A file's lifetime is in
 * its key because a presigned upload cannot carry our metadata (the client would have to send signed headers):
 * the file expires `lifetimeSeconds` after the object was last written (0 = never), and {@link sweepExpired} deletes
 * it from a listing alone. File URLs are presigned GETs (or plain URLs under `publicBaseUrl`), so clients and
 * runners read files from the store, never through the API.
 */
export class S3FileStore implements FileStore {
  readonly kind = 's3' as const;
  readonly payloads: PayloadStore;
  private readonly client: S3Client;
  /** Signs URLs for clients; the host is part of the signature, so it needs the public endpoint. */
  private readonly presigner: S3Client;
  private urlBases?: Promise<string[]>;

  constructor(private readonly options: S3StoreOptions) {
    const common: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
    };
    this.client = new S3Client({ ...common, endpoint: options.endpoint });
    // The default (WHEN_SUPPORTED) signs the checksum of an empty body into the URL, and the store then refuses the
    // real bytes with BadDigest.
    this.presigner = new S3Client({
      ...common,
      endpoint: options.publicEndpoint ?? options.endpoint,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.payloads = new S3PayloadStore(this.client, options.bucket, this.key('payloads/'));
  }

  async save(
    file: { data: Buffer; contentType: string; fileName: string },
    lifecycle: Lifecycle = {},
  ): Promise<StoredFile> {
    const lifetime = this.lifetime(lifecycle);
    const fileName = sanitiseFileName(file.fileName);
    const key = this.key(`files/${lifetime}/${randomUUID()}/${fileName}`);
    // lib-storage switches to a multipart upload for large files (5 MiB parts, 4 at a time).
    await new Upload({
      client: this.client,
      params: { Bucket: this.options.bucket, Key: key, Body: file.data, ContentType: file.contentType },
    }).done();
    return {
      url: await this.urlOf(key, lifetime),
      content_type: file.contentType,
      file_name: fileName,
      file_size: file.data.length,
    };
  }

  /** The API serves no files of this store: their URLs point at the store itself. */
  async read(_id: string, _fileName: string): Promise<FileContent | undefined> {
    return undefined;
  }

  async reserveUpload(
    file: { contentType: string; fileName: string },
    lifecycle: Lifecycle = {},
  ): Promise<UploadReservation> {
    const lifetime = this.lifetime(lifecycle);
    const fileId = randomUUID();
    const fileName = sanitiseFileName(file.fileName);
    const key = this.key(`files/${lifetime}/${fileId}/${fileName}`);
    const window = this.options.uploadWindowSeconds ?? DEFAULT_UPLOAD_WINDOW_SECONDS;
    // No ContentType in the signature: the client's own Content-Type header is what the object keeps.
    const uploadUrl = await getSignedUrl(
      this.presigner,
      new PutObjectCommand({ Bucket: this.options.bucket, Key: key }),
      { expiresIn: Math.min(window, MAX_PRESIGN_SECONDS) },
    );
    return {
      fileId,
      fileName,
      token: '',
      uploadUrl,
      // The file's lifetime starts when the upload ends; its URL must outlive the window plus that.
      fileUrl: await this.urlOf(key, lifetime === 0 ? 0 : lifetime + window),
      uploadExpiresAt: new Date(Date.now() + window * 1000),
    };
  }

  async completeUpload(_id: string, _token: string, _body: Readable, _maxBytes: number): Promise<StoredFile> {
    throw new UploadRejectedError('not_found', 'Uploads go straight to the object store, through their upload_url');
  }

  async sweepExpired(now: number = Date.now()): Promise<SweepResult> {
    const files = await sweepEach(
      listObjects(this.client, this.options.bucket, this.key('files/')),
      (object) => {
        const match = FILE_KEY.exec(object.key.slice(this.key('').length));
        const lifetime = match ? Number(match[1]) : 0;
        // An object listed without a date is treated as written at the epoch, so a finite lifetime has lapsed.
        return lifetime > 0 && (object.lastModified ?? 0) + lifetime * 1000 <= now;
      },
      (object) => this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: object.key })),
    );
    return withPayloadSweep(files, this.payloads, this.options.payloadRetentionSeconds, now);
  }

  async readByUrl(url: string): Promise<StoreFile | undefined> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const plain = `${parsed.origin}${parsed.pathname}`;
    const base = (await this.bases()).find((b) => plain.startsWith(b));
    if (base === undefined) return undefined;
    const key = plain.slice(base.length);
    const match = FILE_KEY.exec(key.slice(this.key('').length));
    // Only files: payload blobs and anything else in the bucket stay out of reach of a crafted input URL.
    if (!key.startsWith(this.key('')) || !match) return undefined;
    const object = await this.getObject(key);
    const lifetime = Number(match[1]);
    if (!object || (lifetime > 0 && object.lastModified + lifetime * 1000 <= Date.now())) {
      throw new StoreFileMissingError('the file is not in the store (never uploaded, or expired)');
    }
    return { data: object.data, contentType: object.contentType };
  }

  private async getObject(
    key: string,
  ): Promise<{ data: Buffer; contentType: string; lastModified: number } | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      const data = Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array());
      return {
        data,
        contentType: out.ContentType ?? 'application/octet-stream',
        lastModified: out.LastModified?.getTime() ?? Date.now(),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** URL prefixes (origin + path up to the key) under which this store's objects are addressed. */
  private bases(): Promise<string[]> {
    this.urlBases ??= (async () => {
      const bases = new Set<string>();
      if (this.options.publicBaseUrl) bases.add(`${this.options.publicBaseUrl.replace(/\/+$/, '')}/`);
      // The SDK knows how it addresses the bucket (path or virtual-host style): ask it for a sample key's URL.
      const probe = 'probe';
      for (const client of [this.presigner, this.client]) {
        const signed = new URL(
          await getSignedUrl(client, new GetObjectCommand({ Bucket: this.options.bucket, Key: probe }), {
            expiresIn: 60,
          }),
        );
        bases.add(`${signed.origin}${signed.pathname.slice(0, -probe.length)}`);
      }
      return [...bases];
    })();
    return this.urlBases;
  }

  private async urlOf(key: string, lifetimeSeconds: number): Promise<string> {
    if (this.options.publicBaseUrl) return `${this.options.publicBaseUrl.replace(/\/+$/, '')}/${key}`;
    const expiresIn = lifetimeSeconds > 0 ? Math.min(lifetimeSeconds, MAX_PRESIGN_SECONDS) : MAX_PRESIGN_SECONDS;
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.options.bucket, Key: key }), {
      expiresIn,
    });
  }

  private lifetime(lifecycle: Lifecycle): number {
    return Math.max(0, Math.floor(lifecycle.expiresInSeconds ?? this.options.defaultExpiresInSeconds ?? 0));
  }

  private key(rest: string): string {
    return this.options.prefix ? `${this.options.prefix}/${rest}` : rest;
  }
}

class S3PayloadStore implements PayloadStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
  ) {}

  async put(sha256: string, data: Uint8Array): Promise<void> {
    await new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: `${this.prefix}${sha256}`,
        Body: data,
        ContentType: 'application/octet-stream',
      },
    }).done();
  }

  async get(sha256: string): Promise<Buffer | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: `${this.prefix}${sha256}` }));
      return Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  describe(sha256: string): string {
    return `s3://${this.bucket}/${this.prefix}${sha256}`;
  }

  async sweep(olderThanSeconds: number, now: number = Date.now()): Promise<SweepResult> {
    return sweepEach(
      listObjects(this.client, this.bucket, this.prefix),
      // A blob listed without a date counts as written now: kept, rather than deleted on a guess.
      (object) => (object.lastModified ?? now) <= now - olderThanSeconds * 1000,
      (object) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: object.key })),
    );
  }
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: unknown })?.name;
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** Every object under `prefix`, page by page (a listing returns at most 1,000 keys per call). */
async function* listObjects(
  client: S3Client,
  bucket: string,
  prefix: string,
): AsyncGenerator<{ key: string; lastModified?: number }> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const item of page.Contents ?? []) {
      if (item.Key) yield { key: item.Key, lastModified: item.LastModified?.getTime() };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}
