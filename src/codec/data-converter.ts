import type { DataConverter } from '@temporalio/common';
import type { PayloadStore } from '../storage/file-store';
import { ClaimCheckCodec } from './claim-check';

/** The module of the queue's payload converter, for `bundleWorkflowCode({ payloadConverterPath })`. */
export const payloadConverterPath: string = require.resolve('./payload-converter');

/** What {@link createDataConverter} needs: the store's payload area and the claim-check threshold. */
export interface DataConverterOptions {
  payloads: PayloadStore;
  /** Payloads over this many bytes go to the store; 0 = never. See `CLAIM_CHECK_THRESHOLD_BYTES`. */
  claimCheckThresholdBytes: number;
}

/**
 * The data converter every client and worker of the queue uses (the API's client, the workers, an embedding
 * application's workers): lossless JSON numbers and the claim check for large payloads. All of them must share the
 * store, or one reads references to bytes it cannot reach.
 */
export function createDataConverter(options: DataConverterOptions): DataConverter {
  return {
    payloadConverterPath,
    payloadCodecs: [new ClaimCheckCodec({ store: options.payloads, thresholdBytes: options.claimCheckThresholdBytes })],
  };
}
