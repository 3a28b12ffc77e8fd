import type { WorkflowHandle } from '@temporalio/client';
import {
  ActivityFailure,
  TimeoutFailure,
  decodeRetryState,
  TimeoutType,
  type LoadedDataConverter,
} from '@temporalio/common';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import type { InferenceResult } from '../activities';
import { fromRawPayload } from '../codec';
import { failedOutcome, succeededOutcome } from '../workflows/inference-request/outcomes';
import type { InferenceRequestInput } from '../workflows/inference-request/messages';
import type { RequestOutcome } from '../workflows/shared/request';

const INFERENCE_ACTIVITY_TYPE = 'runInference';

/**
 * The outcome of a running request whose run has ended, read from its history: what the workflow made of the run's
 * last event, with the same functions. The API needs it while the webhook's first attempt runs as a local activity
 * (`InferenceRequestInput.firstWebhookAttemptLocal`): the workflow task stays open for that long, and a query would
 * wait for it.
 *
 * @returns undefined when the history does not settle it: no run has ended, or the workflow asked to cancel the run
 *   (its outcome is then the workflow's to tell).
 */
export async function outcomeFromHistory(
  handle: WorkflowHandle,
  converter: LoadedDataConverter,
): Promise<RequestOutcome | undefined> {
  const events = (await handle.fetchHistory()).events ?? [];
  // A request schedules its run once (retries are attempts of that one activity).
  const scheduled = events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === INFERENCE_ACTIVITY_TYPE,
  );
  if (!scheduled) return undefined;
  // Event ids are Longs; their decimal text compares them.
  const scheduledId = String(scheduled.eventId);
  const ofRun = (attributes: { scheduledEventId?: unknown } | null | undefined) =>
    attributes != null && String(attributes.scheduledEventId) === scheduledId;
  for (const event of events) {
    if (ofRun(event.activityTaskCancelRequestedEventAttributes)) return undefined;
    if (ofRun(event.activityTaskCompletedEventAttributes)) {
      const payload = event.activityTaskCompletedEventAttributes!.result?.payloads?.[0];
      if (!payload) return undefined;
      return succeededOutcome(await fromRawPayload<InferenceResult>(converter, payload));
    }
    const failed = event.activityTaskFailedEventAttributes ?? event.activityTaskTimedOutEventAttributes;
    if (ofRun(failed)) {
      const cause = await decodeOptionalFailureToOptionalError(converter, failed!.failure);
      const activityId = scheduled.activityTaskScheduledEventAttributes?.activityId ?? undefined;
      const identity = event.activityTaskFailedEventAttributes?.identity ?? undefined;
      const failure = new ActivityFailure(
        'Activity task failed',
        INFERENCE_ACTIVITY_TYPE,
        activityId,
        decodeRetryState(failed!.retryState),
        identity,
        cause,
      );
      const startTimeout = cause instanceof TimeoutFailure && cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
      // Only a start timeout's message needs the request's own timeout, from its input (decoded only then).
      return failedOutcome(failure, startTimeout ? await startTimeoutSecondsOf(events[0], converter) : undefined);
    }
  }
  return undefined;
}

async function startTimeoutSecondsOf(
  started: temporal.api.history.v1.IHistoryEvent | undefined,
  converter: LoadedDataConverter,
): Promise<number | undefined> {
  const payload = started?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) return undefined;
  return (await fromRawPayload<InferenceRequestInput>(converter, payload)).startTimeoutSeconds;
}
