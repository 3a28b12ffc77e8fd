import { createHash } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import type { PayloadStore } from '../storage/file-store';

/** Metadata key that marks a claim-check reference; its value is the reference format's version. */
export const CLAIM_CHECK_METADATA_KEY = 'fal-claim-check';
const VERSION = 'v1';
/** Original metadata of a claimed payload, JSON of base64 values (the encoding is replaced by `json/plain`). */
const ORIGINAL_METADATA_KEY = 'fal-claim-check-metadata';

/** The JSON that history keeps in place of a large payload; what the Temporal UI shows. */
export interface ClaimCheckReference {
  /** Where the bytes are, e.g. `s3://bucket/prefix/payloads/<sha256>`. */
  claim_check: string;
  sha256: string;
  bytes: number;
  /** The payload's own encoding, e.g. `json/plain`. */
  encoding: string;
  /** The first characters of a JSON payload, so a reader of the history can tell what it was. */
  preview?: string;
}

/**
 * Temporal's own limit on one payload (the server's default `limit.blobSize.error`: 2 MiB); only matters when the
 * claim check is off.
 */
export const TEMPORAL_PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024;

/** A payload that can be carried neither in history nor through the claim check; the API answers 413. */
export class PayloadTooLargeError extends Error {
  override name = 'PayloadTooLargeError';
  constructor(
    readonly bytes: number,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown when a reference names bytes that are not in the store (swept, or another store). */
export class ClaimCheckMissingError extends Error {
  override name = 'ClaimCheckMissingError';
}

export interface ClaimCheckOptions {
  store: PayloadStore;
  /** Payloads whose data is larger than this many bytes go to the store; 0 = never (the claim check is off). */
  thresholdBytes: number;
  /**
   * The largest payload claimed (beyond it, {@link PayloadTooLargeError}).
   * @default 1 GiB
   */
  maxBytes?: number;
}

const PREVIEW_CHARS = 200;

/**
 * A {@link PayloadCodec} that moves payloads over a size threshold into the file store's payload area and keeps a
 * small, readable JSON reference in their place (see {@link ClaimCheckReference}); smaller payloads pass unchanged.
 *
 * Codecs run outside the workflow sandbox (in the client and the worker, around every payload they send or
 * receive), so workflows stay deterministic: they see the original values. The key is the payload's SHA-256, so a
 * payload encoded twice is stored once, and decoding checks that the bytes are the ones the reference names.
 */
export class ClaimCheckCodec implements PayloadCodec {
  private readonly maxBytes: number;

  constructor(private readonly options: ClaimCheckOptions) {
    this.maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((payload) => this.encodeOne(payload)));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((payload) => this.decodeOne(payload)));
  }

  private async encodeOne(payload: Payload): Promise<Payload> {
    const data = payload.data ?? new Uint8Array();
    const { thresholdBytes } = this.options;
    if (thresholdBytes <= 0) {
      if (data.length > TEMPORAL_PAYLOAD_LIMIT_BYTES) {
        throw new PayloadTooLargeError(
          data.length,
          `The payload is ${data.length} bytes, more than Temporal carries in one payload ` +
            `(${TEMPORAL_PAYLOAD_LIMIT_BYTES}), and the claim check is off (CLAIM_CHECK_THRESHOLD_BYTES=0)`,
        );
      }
      return payload;
    }
    if (data.length <= thresholdBytes) return payload;
    if (data.length > this.maxBytes) {
      throw new PayloadTooLargeError(
        data.length,
        `The payload is ${data.length} bytes, more than the ${this.maxBytes} bytes the claim check stores`,
      );
    }
    const sha256 = createHash('sha256').update(data).digest('hex');
    await this.options.store.put(sha256, data);
    const metadata = payload.metadata ?? {};
    const encoding = metadata[METADATA_ENCODING_KEY];
    const encodingName = encoding ? Buffer.from(encoding).toString('utf8') : 'binary/null';
    const reference: ClaimCheckReference = {
      claim_check: this.options.store.describe(sha256),
      sha256,
      bytes: data.length,
      encoding: encodingName,
      preview: encodingName.startsWith('json/') ? previewOf(data) : undefined,
    };
    const original = Object.fromEntries(
      Object.entries(metadata).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    );
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from('json/plain'),
        [CLAIM_CHECK_METADATA_KEY]: Buffer.from(VERSION),
        [ORIGINAL_METADATA_KEY]: Buffer.from(JSON.stringify(original)),
      },
      data: Buffer.from(JSON.stringify(reference)),
    };
  }

  private async decodeOne(payload: Payload): Promise<Payload> {
    const marker = payload.metadata?.[CLAIM_CHECK_METADATA_KEY];
    if (!marker) return payload;
    if (Buffer.from(marker).toString('utf8') !== VERSION) {
      throw new Error(`claim-check reference of unknown version ${Buffer.from(marker).toString('utf8')}`);
    }
    const reference = JSON.parse(Buffer.from(payload.data ?? []).toString('utf8')) as ClaimCheckReference;
    const data = await this.options.store.get(reference.sha256);
    if (!data) {
      throw new ClaimCheckMissingError(
        `The claim-checked payload ${reference.claim_check} (${reference.bytes} bytes) is not in the store: ` +
          'it was swept (CLAIM_CHECK_RETENTION_SECONDS) or this process uses another store',
      );
    }
    if (createHash('sha256').update(data).digest('hex') !== reference.sha256) {
      throw new Error(`The claim-checked payload ${reference.claim_check} does not match its SHA-256`);
    }
    const originalText = payload.metadata?.[ORIGINAL_METADATA_KEY];
    const original = originalText
      ? (JSON.parse(Buffer.from(originalText).toString('utf8')) as Record<string, string>)
      : {};
    return {
      metadata: Object.fromEntries(Object.entries(original).map(([key, value]) => [key, Buffer.from(value, 'base64')])),
      data,
    };
  }
}

/** The start of a JSON payload, cut on a character boundary, for people reading the history. */
function previewOf(data: Uint8Array): string {
  const head = Buffer.from(data.subarray(0, PREVIEW_CHARS * 4)).toString('utf8');
  return head.length > PREVIEW_CHARS ? `${head.slice(0, PREVIEW_CHARS)}…` : head;
}
