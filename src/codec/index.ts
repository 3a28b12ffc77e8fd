/**
 * The one place the payload codec chain is built, so the API's client, the workers, the codec endpoint
 * and embedding applications encode and decode payloads the same way.
 */
import type { DataConverter, LoadedDataConverter, Payload, PayloadCodec } from '@temporalio/common';
import type { Config } from '../config';
import { EncryptionCodec } from './encryption';

export {
  EncryptionCodec,
  PayloadDecryptionError,
  parseEncryptionKeys,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
} from './encryption';
export type { EncryptionKey } from './encryption';

/**
 * The payload codecs this configuration asks for, in encode order (Temporal decodes in reverse).
 * Encryption comes last on encode, so whatever reaches the Temporal server is ciphertext.
 * Empty when `PAYLOAD_ENCRYPTION_KEYS` is unset.
 */
export function createPayloadCodecs(config: Pick<Config, 'codec'>): PayloadCodec[] {
  const codecs: PayloadCodec[] = [];
  if (config.codec.encryptionKeys.length > 0) codecs.push(new EncryptionCodec(config.codec.encryptionKeys));
  return codecs;
}

/**
 * The `dataConverter` option of `new Client(...)` and `Worker.create(...)` for these codecs; pass the same
 * list everywhere (see {@link createPayloadCodecs}).
 */
export function dataConverterFor(codecs: readonly PayloadCodec[]): DataConverter {
  return codecs.length > 0 ? { payloadCodecs: [...codecs] } : {};
}

/**
 * A value from a payload read raw from Temporal (a history event, pending activity heartbeat details):
 * the SDK decodes those only on its own paths, so this runs the codecs (in reverse) before converting.
 */
export async function fromRawPayload<T>(converter: LoadedDataConverter, payload: Payload): Promise<T> {
  let payloads = [payload];
  for (const codec of [...converter.payloadCodecs].reverse()) payloads = await codec.decode(payloads);
  return converter.payloadConverter.fromPayload<T>(payloads[0]!);
}
