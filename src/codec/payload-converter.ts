/**
 * The queue's payload converter: Temporal's default set, with a JSON converter that keeps every number's value
 * (integers past 2^53, `-0`, long decimals; see `./json`). Its payloads are ordinary `json/plain`, so the Temporal UI,
 * `temporal workflow show` and other SDKs read them, and histories written by the default converter decode
 * unchanged. Workers bundle it into the workflow code (`payloadConverterPath`): no Node imports.
 */
import {
  BinaryPayloadConverter,
  CompositePayloadConverter,
  METADATA_ENCODING_KEY,
  UndefinedPayloadConverter,
  ValueError,
  encodingKeys,
  encodingTypes,
  type Payload,
  type PayloadConverterWithEncoding,
} from '@temporalio/common';
import { decode, encode } from '@temporalio/common/lib/encoding';
import { parseJson, stringifyJson } from './json';

/** `json/plain` through {@link parseJson} / {@link stringifyJson}. */
export class LosslessJsonPayloadConverter implements PayloadConverterWithEncoding {
  readonly encodingType = encodingTypes.METADATA_ENCODING_JSON;

  toPayload(value: unknown): Payload | undefined {
    if (value === undefined) return undefined;
    let json: string;
    try {
      json = stringifyJson(value);
    } catch {
      return undefined;
    }
    return { metadata: { [METADATA_ENCODING_KEY]: encodingKeys.METADATA_ENCODING_JSON }, data: encode(json) };
  }

  fromPayload<T>(content: Payload): T {
    if (content.data === undefined || content.data === null) throw new ValueError('Got payload with no data');
    return parseJson(decode(content.data)) as T;
  }
}

/** Pass as `dataConverter.payloadConverterPath` (its module) and to `bundleWorkflowCode({ payloadConverterPath })`. */
export const payloadConverter = new CompositePayloadConverter(
  new UndefinedPayloadConverter(),
  new BinaryPayloadConverter(),
  new LosslessJsonPayloadConverter(),
);
