/**
 * The workflow bundle's entry (`workflowsPath`): every export here is registered as a workflow type, so this module
 * exports the workflow functions only. Messages (queries, signals, updates, inputs) are in each workflow's
 * `messages.ts`; workflow-safe helpers in `shared/`.
 */
export { admissionQueue } from './admission-queue/workflow';
export { fileSweep } from './file-sweep';
export { inferenceRequest } from './inference-request/workflow';
export { webhookDelivery } from './webhook-delivery/workflow';
