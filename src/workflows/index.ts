export * from './inference-request';
export * from './webhook-delivery';
