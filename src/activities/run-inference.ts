import { ApplicationFailure, Context } from '@temporalio/activity';
import { asRunnerError } from '../errors';
import { ErrorType } from '../workflows/shared/errors';
import type { LogEntry, LogLevel } from '../workflows/shared/request';
import type { FetchedInput, ModelContext, ModelRunner } from '../models/types';
import type { FileStore } from '../storage/file-store';

export interface RunInferenceInput {
  requestId: string;
  modelId: string;
  input: unknown;
  /** Lifetime of the files this run stores; undefined = the file store's default. */
  fileExpiresInSeconds?: number;
  /**
   * The model's admission queue (models with a concurrency limit): a run that ends well gives the request's slot
   * back there itself, the moment the model has answered, so the next request can start while this one's result is
   * being recorded. A run that fails leaves it to the workflow (which may retry it).
   */
  admissionQueueWorkflowId?: string;
  /** The request waited in the task queue: tell its workflow the run has started (see `runStartedSignal`). */
  reportStart?: boolean;
  /** Report the start only once the run has gone on this long (`RUN_START_REPORT_AFTER_MS`); absent = at once. */
  reportStartAfterMs?: number;
}

export interface InferenceResult {
  output: unknown;
  logs: LogEntry[];
  /** The runner's own time, in seconds (fal's `metrics.inference_time`). */
  inferenceTime: number;
  /** The run gave the slot back to {@link RunInferenceInput.admissionQueueWorkflowId}; absent = the workflow must. */
  slotReleased?: boolean;
}

/** What every failed run carries in `ApplicationFailure.details[0]`, so the outcome keeps the logs. */
export interface InferenceFailureDetails {
  logs: LogEntry[];
  detail?: unknown;
}

/** Heartbeat payload; the API reads it (via describe) to show logs while the run goes on. */
export interface InferenceHeartbeat {
  logs: LogEntry[];
}

export interface RunInferenceDeps {
  runners: ReadonlyMap<string, ModelRunner>;
  fileStore: FileStore;
  fetchInput: (url: string, signal: AbortSignal) => Promise<FetchedInput>;
  /** Gives a slot back to an admission queue (batched per process); see `createAdmissionActivities`. */
  releaseSlot?: (input: { queueWorkflowId: string; requestId: string }) => Promise<void>;
  /** Tells a request's workflow its run has started (`runStartedSignal`). */
  reportStarted?: (requestId: string) => Promise<void>;
}

// Bounds what a chatty runner can put into every heartbeat (and the final history event).
const MAX_LOG_ENTRIES = 500;
const HEARTBEAT_EVERY_MS = 1000;

/** Builds the `runInference` activity: dispatches to the model's runner, reporting logs as heartbeats. */
export function createRunInference(deps: RunInferenceDeps) {
  return async function runInference({
    requestId,
    modelId,
    input,
    fileExpiresInSeconds,
    admissionQueueWorkflowId,
    reportStart,
    reportStartAfterMs,
  }: RunInferenceInput): Promise<InferenceResult> {
    const ctx = Context.current();
    const runner = deps.runners.get(modelId);
    if (!runner) {
      throw ApplicationFailure.nonRetryable(`Model ${modelId} is not served by this worker`, ErrorType.NotConfigured);
    }
    const report = reportStart && deps.reportStarted;
    const sendReport = () => {
      if (!report) return;
      // Not awaited: the run does not wait for the bookkeeping. A lost signal leaves the request counted as waiting
      // (positions of those behind it one too high) until it ends.
      report(requestId).catch((err: unknown) => ctx.log.warn('could not report the start of the run', { err }));
    };
    // A run that ends first is never reported (see RUN_START_REPORT_AFTER_MS): cleared below.
    const reportTimer = report && reportStartAfterMs ? setTimeout(sendReport, reportStartAfterMs) : undefined;
    if (!reportTimer) sendReport();
    // A retried attempt continues the log of the previous ones.
    const previous = ctx.info.heartbeatDetails as InferenceHeartbeat | undefined;
    const logs: LogEntry[] = Array.isArray(previous?.logs) ? [...previous.logs] : [];
    const heartbeat = () => ctx.heartbeat({ logs } satisfies InferenceHeartbeat);
    const log = (message: string, level: LogLevel = 'INFO') => {
      logs.push({ message, level, source: 'USER', timestamp: new Date().toISOString() });
      if (logs.length > MAX_LOG_ENTRIES) logs.splice(0, logs.length - MAX_LOG_ENTRIES);
      heartbeat();
    };
    // Heartbeats also carry cancellation to us, so they must keep flowing while the runner is quiet.
    // No heartbeat at the start: the SDK sends a first heartbeat at once, which would cost every run (most of them
    // quick, with no log yet) one more call to the server and one more write of the activity's state. The heartbeat
    // timeout counts from the start anyway; logs heartbeat when they come.
    const ticker = setInterval(heartbeat, HEARTBEAT_EVERY_MS);
    const modelCtx: ModelContext = {
      requestId,
      signal: ctx.cancellationSignal,
      log,
      saveFile: (file) => deps.fileStore.save(file, { expiresInSeconds: fileExpiresInSeconds }),
      fetchInput: (url) => deps.fetchInput(url, ctx.cancellationSignal),
    };
    const started = performance.now();
    try {
      const output = await runner.run(input, modelCtx);
      const inferenceTime = (performance.now() - started) / 1000;
      let slotReleased: true | undefined;
      if (admissionQueueWorkflowId && deps.releaseSlot) {
        // Not awaited: the result is not held up by the queue. Should this signal be lost (the process dies now),
        // the queue finds the slot's workflow closed at its next check of slot holders and frees it then.
        deps
          .releaseSlot({ queueWorkflowId: admissionQueueWorkflowId, requestId })
          .catch((err: unknown) => ctx.log.warn('could not give the slot back; the queue will reclaim it', { err }));
        slotReleased = true;
      }
      return { output, logs, inferenceTime, slotReleased };
    } catch (err) {
      if (ctx.cancellationSignal.aborted) throw err;
      throw toFailure(err, logs);
    } finally {
      clearInterval(ticker);
      clearTimeout(reportTimer);
    }
  };
}

/**
 * Maps a runner's error to the failure the workflow decides on: a `RunnerError` names its failure type (and
 * whether it is retryable); anything else is an unexpected failure, retried, reported as a runner error.
 */
function toFailure(err: unknown, logs: LogEntry[]): ApplicationFailure {
  const runnerError = asRunnerError(err);
  if (runnerError) {
    return ApplicationFailure.create({
      message: runnerError.message,
      type: runnerError.failureType,
      nonRetryable: !runnerError.retryable,
      details: [{ logs, detail: runnerError.detail } satisfies InferenceFailureDetails],
    });
  }
  const error = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({
    message: error.message,
    type: error.name,
    details: [{ logs } satisfies InferenceFailureDetails],
    cause: error,
  });
}
