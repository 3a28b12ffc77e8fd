/**
 * `fal-queue-temporal`: the package's main entry, for applications that embed the queue. Register our
 * workflows and activities in a Temporal worker you already run and drive requests from code. The other
 * entry points: `fal-queue-temporal/workflows` (what your workflow bundle re-exports),
 * `fal-queue-temporal/api` (the Express app) and `fal-queue-temporal/testing` (our workflows in your
 * tests). docs/embedding.md shows a worker that does all this; test/embedding runs it from the packed package.
 *
 * Loading this entry loads neither Express nor the optional parts (TensorFlow.js, Swagger UI).
 */

export { VERSION, PACKAGE_NAME } from './version';

// Workflows: what `Worker.create({ workflowsPath })` or `bundleWorkflowCode` needs.
export { workflowsPath, workflowBundleOptions, createWorkers, loadWorkflowBundle } from './worker-set';
export type { WorkerSetOptions } from './worker-set';
export type { InferenceRequestInput, RequestProgress, RequestResult } from './workflows/inference-request/messages';
export { outcomeOf } from './workflows/inference-request/messages';
export type { DeliveryReport, WebhookDeliveryInput } from './workflows/webhook-delivery/messages';

// Activities: build them once per worker process with their dependencies.
export { createActivities } from './activities';
export type { Activities, ActivityDeps } from './activities';
export { createActivityDeps, startWorkers } from './worker-set';
export type { RunningWorkers } from './worker-set';

// Task queues: requests run on the control queue, each model's inference on its own queue.
export { modelTaskQueue, ModelRegistry, ModelsFileError } from './models/registry';
export type { ModelDefinition, ModelsFile } from './models/registry';
export { createModelRunners } from './models/runners';
export type { ModelRunner, ModelContext } from './models/types';

// The typed client the API is built on (the API itself: `fal-queue-temporal/api`).
export { RequestsClient } from './client/requests';
export { ensureFileSweeper } from './client/file-sweeper';
export type { RequestView, SubmitRequest, SubmitResult, RequestsClientOptions } from './client/requests';
export { QueueStatus } from './workflows/shared/request';
export { RequestErrorType } from './workflows/shared/errors';
export type { RequestOutcome, LogEntry, WebhookBody } from './workflows/shared/request';

// The data converter (lossless JSON, claim check, encryption): give your own clients and workers the same one as ours.
export {
  createDataConverter,
  createPayloadCodecs,
  encryptionCodecs,
  payloadConverterPath,
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
export { temporalConnectionOptions, connectToTemporal, TemporalConnectError } from './temporal/connection';
export { createLogger } from './logger';

// Observability.
export { createMetrics, processMetrics } from './observability/metrics';
export type { QueueMetrics } from './observability/metrics';
export { workerObservability, workflowInterceptorModules } from './observability/worker-observability';
export type { WorkerObservability } from './observability/worker-observability';
export { FalErrorType, FalModelId, FalOwner, FalState, FalStateValue } from './workflows/shared/search-attributes';
export { REQUEST_SEARCH_ATTRIBUTES, searchAttributeCreateCommands } from './observability/search-attributes';
