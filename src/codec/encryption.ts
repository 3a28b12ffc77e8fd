import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/** `metadata.encoding` of a payload this codec encrypted (the name Temporal's samples and codec servers use). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata key naming the key that encrypted a payload, so several keys can be in use during a rotation. */
export const KEY_ID_METADATA = 'encryption-key-id';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
// 96-bit nonces are GCM's native size; a random one per payload is safe far beyond any key's lifetime here.
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** One AES-256 key and the id written next to every payload it encrypts. */
export interface EncryptionKey {
  id: string;
  /** 32 bytes. */
  key: Uint8Array;
}

/** A payload that cannot be decrypted: unknown key id, truncated, or altered (the GCM tag does not match). */
export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

/**
 * Parses `PAYLOAD_ENCRYPTION_KEYS`: `id:base64key` entries, comma separated, each key 32 bytes (e.g. from
 * `openssl rand -base64 32`). The first entry encrypts; every entry decrypts.
 * @throws Error naming the bad entry (never its key material).
 */
export function parseEncryptionKeys(raw: string): EncryptionKey[] {
  const keys = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const colon = entry.indexOf(':');
      const id = colon < 0 ? entry : entry.slice(0, colon);
      const encoded = colon < 0 ? '' : entry.slice(colon + 1).trim();
      if (!KEY_ID.test(id)) throw new Error(`key id "${id}" must be 1-64 of A-Z a-z 0-9 . _ -`);
      const key = Buffer.from(encoded, 'base64');
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded) || key.length !== KEY_BYTES) {
        throw new Error(`key "${id}" must be ${KEY_BYTES} bytes in base64 (openssl rand -base64 32)`);
      }
      return { id, key: new Uint8Array(key) };
    });
  const ids = new Set<string>();
  for (const { id } of keys) {
    if (ids.has(id)) throw new Error(`key id "${id}" appears twice`);
    ids.add(id);
  }
  return keys;
}

/**
 * AES-256-GCM {@link PayloadCodec}: each payload, metadata included (so even its encoding is hidden), is
 * serialised as a protobuf `Payload` and encrypted with the first key; the result carries
 * `encoding: binary/encrypted` and the key's id. Decoding picks the key by that id, so payloads written
 * before a rotation stay readable while the old key is still listed. Payloads that are not encrypted
 * pass through unchanged: histories written before encryption was turned on remain readable.
 *
 * The key id is bound to the ciphertext as GCM's additional data, so neither can be swapped alone.
 */
export class EncryptionCodec implements PayloadCodec {
  readonly #encryptWith: EncryptionKey;
  readonly #byId: ReadonlyMap<string, Uint8Array>;

  /** @param keys the first encrypts; all decrypt. */
  constructor(keys: readonly EncryptionKey[]) {
    const first = keys[0];
    if (!first) throw new Error('EncryptionCodec needs at least one key');
    for (const { id, key } of keys) {
      if (key.length !== KEY_BYTES) throw new Error(`key "${id}" is ${key.length} bytes, not ${KEY_BYTES}`);
    }
    this.#encryptWith = first;
    this.#byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** Id of the key new payloads are encrypted with. */
  get currentKeyId(): string {
    return this.#encryptWith.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.#encrypt(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.#decrypt(payload));
  }

  #encrypt(payload: Payload): Payload {
    const { id, key } = this.#encryptWith;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(id));
    const plaintext = temporal.api.common.v1.Payload.encode(payload).finish();
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return {
      metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(id) },
      data: Buffer.concat([iv, ciphertext, cipher.getAuthTag()]),
    };
  }

  #decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || Buffer.from(encoding).toString() !== ENCRYPTED_ENCODING) return payload;
    const idBytes = payload.metadata?.[KEY_ID_METADATA];
    const id = idBytes ? Buffer.from(idBytes).toString() : '';
    const key = this.#byId.get(id);
    if (!key) {
      throw new PayloadDecryptionError(
        `payload encrypted with key "${id}", which PAYLOAD_ENCRYPTION_KEYS does not list (keep retired keys listed until no history needs them)`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError('encrypted payload is truncated');
    const decipher = createDecipheriv(ALGORITHM, key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(id));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(`encrypted payload failed authentication with key "${id}" (altered or corrupt)`);
    }
    return temporal.api.common.v1.Payload.decode(plaintext);
  }
}
