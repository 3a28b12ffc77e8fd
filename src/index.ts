/**
 * The package's public surface, for applications that embed the queue: register our workflows and
 * activities in a Temporal worker you already run, mount the API in your own process, or drive
 * requests from code. README "Embedding" shows a worker that does so; `test/embedding` runs it.
 */

// Workflows: what `Worker.create({ workflowsPath })` or `bundleWorkflowCode` needs.
export { workflowsPath, workflowBundleOptions, createWorkers, loadWorkflowBundle } from './workers';
export type { WorkerSetOptions } from './workers';
export type { InferenceRequestInput, RequestProgress, DeliveryReport, WebhookDeliveryInput } from './workflows';

// Activities: build them once per worker process with their dependencies.
export { createActivities } from './activities';
export type { Activities, ActivityDeps } from './activities';
export { createActivityDeps, startWorkers } from './worker';
export type { RunningWorkers } from './worker';

// Task queues: requests run on the control queue, each model's inference on its own queue.
export { modelTaskQueue, ModelRegistry, ModelsFileError } from './models/registry';
export type { ModelDefinition, ModelsFile } from './models/registry';
export { createModelRunners } from './models/runners';
export type { ModelRunner, ModelContext } from './models/types';

// The HTTP API and the typed client behind it.
export { createApp } from './api/app';
export type { AppDeps } from './api/app';
export { apiRoutes, apiDocument } from './api/openapi-routes';
export { buildOpenApiDocument } from './api/openapi';
export type { RouteDoc, ResponseDoc } from './api/openapi';
export { startServer } from './server';
export type { RunningServer } from './server';
export { RequestsClient } from './client/requests';
export type { RequestView, SubmitRequest, SubmitResult, RequestsClientOptions } from './client/requests';
export { QueueStatus, RequestErrorType } from './domain/request';
export type { RequestOutcome, LogEntry, WebhookBody } from './domain/request';

// Payload encryption: give your own clients and workers the same codecs (`dataConverter`) as ours.
export {
  createPayloadCodecs,
  dataConverterFor,
  EncryptionCodec,
  parseEncryptionKeys,
  PayloadDecryptionError,
} from './codec';
export type { EncryptionKey } from './codec';
export { codecRoutes } from './api/codec-routes';
export type { CodecRoutesDeps } from './api/codec-routes';

// Configuration and connection.
export { loadConfig, EnvSchema, ConfigError } from './config';
export type { Config } from './config';
export { temporalConnectionOptions } from './temporal/connection';

// Observability.
export { createMetrics, processMetrics } from './observability/metrics';
export type { QueueMetrics } from './observability/metrics';
export { workerObservability, workflowInterceptorModules } from './observability/worker-observability';
export type { WorkerObservability } from './observability/worker-observability';
export {
  FalErrorType,
  FalModelId,
  FalOwner,
  FalState,
  FalStateValue,
  REQUEST_SEARCH_ATTRIBUTES,
  searchAttributeCreateCommands,
} from './observability/search-attributes';
