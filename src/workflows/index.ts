export * from './admission-queue';
export * from './file-sweep';
export * from './inference-request';
export * from './webhook-delivery';
