/**
 * The one place the payload codec chain is built, so the API's client, the workers, the codec endpoint
 * and embedding applications encode and decode payloads the same way.
 */
import type { DataConverter, LoadedDataConverter, Payload, PayloadCodec } from '@temporalio/common';
import type { Config } from '../config';
import type { PayloadStore } from '../storage/file-store';
import { ClaimCheckCodec } from './claim-check';
import { EncryptionCodec } from './encryption';

/** The module of the queue's payload converter (lossless JSON numbers), for `bundleWorkflowCode({ payloadConverterPath })`. */
export const payloadConverterPath: string = require.resolve('./payload-converter');

export {
  EncryptionCodec,
  PayloadDecryptionError,
  parseEncryptionKeys,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
} from './encryption';
export type { EncryptionKey } from './encryption';

/**
 * The payload codecs this configuration asks for, in encode order (Temporal decodes in reverse): the claim check
 * first (when a store is given: payloads over `CLAIM_CHECK_THRESHOLD_BYTES` go to the store), then encryption, so
 * whatever reaches the Temporal server, references included, is ciphertext when `PAYLOAD_ENCRYPTION_KEYS` is set.
 */
export function createPayloadCodecs(
  config: Pick<Config, 'codec' | 'storage'>,
  payloads?: PayloadStore,
): PayloadCodec[] {
  const codecs: PayloadCodec[] = [];
  // With the threshold at 0 the codec still runs: it refuses, with the reason, what Temporal would refuse.
  if (payloads) {
    codecs.push(new ClaimCheckCodec({ store: payloads, thresholdBytes: config.storage.claimCheckThresholdBytes }));
  }
  codecs.push(...encryptionCodecs(config));
  return codecs;
}

/**
 * The codecs the operators' codec endpoint runs: encryption only, so the Web UI shows decrypted payloads and, for a
 * claim-checked one, its readable reference rather than megabytes fetched from the store.
 */
export function encryptionCodecs(config: Pick<Config, 'codec'>): PayloadCodec[] {
  return config.codec.encryptionKeys.length > 0 ? [new EncryptionCodec(config.codec.encryptionKeys)] : [];
}

/**
 * The data converter every client and worker of the queue uses (the API's client, the workers, an embedding
 * application's workers): lossless JSON numbers, the claim check for large payloads, and encryption when configured.
 * All of them must share the store and the keys, or one reads references or ciphertext it cannot open.
 */
export function createDataConverter(config: Pick<Config, 'codec' | 'storage'>, payloads?: PayloadStore): DataConverter {
  return { payloadConverterPath, payloadCodecs: createPayloadCodecs(config, payloads) };
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
