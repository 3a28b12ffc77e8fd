import {
  ActivityCancellationType,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { QueueStatus, type RequestOutcome } from '../shared/request';
import { FalStateValue, upsertRequestState } from '../shared/search-attributes';
import { deliverFromRequest } from '../webhook-delivery/delivery';
import {
  admittedSignal,
  progressQuery,
  RUN_START_REPORT_AFTER_MS,
  runStartedSignal,
  type InferenceRequestInput,
  type RequestProgress,
  type RequestResult,
} from './messages';
import { cancelledOutcome, failedOutcome, startTimeoutOutcome, succeededOutcome } from './outcomes';

/**
 * One inference request: run the model on its own task queue, then make the webhook's first attempt (if any); a
 * delivery that needs retries goes on in a child workflow that outlives this one. The result is readable as soon as
 * inference ends (the progress query answers while the webhook is sent).
 */
export async function inferenceRequest(req: InferenceRequestInput): Promise<RequestResult> {
  const progress: RequestProgress = { status: QueueStatus.InQueue };
  setHandler(progressQuery, () => progress);

  const { runInference } = proxyActivities<Activities>({
    taskQueue: req.model.taskQueue,
    startToCloseTimeout: `${req.model.timeoutSeconds}s`,
    heartbeatTimeout: `${req.model.heartbeatTimeoutSeconds}s`,
    retry: {
      maximumAttempts: req.model.maxAttempts,
      initialInterval: '1s',
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
    },
    // The workflow moves on at once; the runner still learns of it through its next heartbeat.
    cancellationType: ActivityCancellationType.TRY_CANCEL,
    // Without an admission queue, "started" means a runner picked the run up.
    ...(!req.admission && req.startTimeoutSeconds !== undefined && { scheduleToStartTimeout: startDeadlineMs(req) }),
    // The model's task queue orders waiting runs by this: `low` behind `normal`, owners shared by weight.
    ...(req.queueing && { priority: req.queueing.priority }),
  });
  // Set when the runner gave the slot back itself (see RunInferenceInput.admissionQueueWorkflowId).
  let slotReleased = false;
  const infer = async (): Promise<RequestOutcome> => {
    // A request admitted at submit was started as DISPATCHED already (upsertRequestState skips an unchanged value).
    // One waiting in the task queue stays IN_QUEUE until its runner reports the start.
    if (!req.queueing) upsertRequestState(FalStateValue.Dispatched);
    const result = await runInference({
      requestId: req.requestId,
      modelId: req.modelId,
      input: req.input,
      fileExpiresInSeconds: req.fileExpiresInSeconds,
      admissionQueueWorkflowId: req.admission?.queueWorkflowId,
      ...(req.queueing && { reportStart: true, reportStartAfterMs: RUN_START_REPORT_AFTER_MS }),
    });
    slotReleased = result.slotReleased === true;
    return succeededOutcome(result);
  };

  setHandler(runStartedSignal, () => {
    if (progress.status !== QueueStatus.InQueue) return;
    progress.status = QueueStatus.InProgress;
    upsertRequestState(FalStateValue.Dispatched);
  });

  let admitted = req.admission?.admitted ?? true;
  setHandler(admittedSignal, () => void (admitted = true));

  let outcome: RequestOutcome;
  let cancellation: unknown;
  try {
    outcome = (await waitForSlot(req, () => admitted)) ?? (await infer());
  } catch (err) {
    if (isCancellation(err)) {
      cancellation = err;
      outcome = cancelledOutcome();
    } else {
      outcome = failedOutcome(err, req.startTimeoutSeconds);
    }
  }
  progress.status = QueueStatus.Completed;
  progress.outcome = outcome;
  const recordCompleted = () =>
    upsertRequestState(FalStateValue.Completed, outcome.status === 'ERROR' ? outcome.errorType : undefined);
  if (!req.completedStateAtClose) recordCompleted();

  // The slot (or the place in the queue) goes back at once, alongside the webhook hand-off. Awaited before the
  // workflow ends: Temporal drops signals of a workflow that has closed.
  const released =
    req.admission && !slotReleased
      ? CancellationScope.nonCancellable(() => releaseSlot(req.admission!.queueWorkflowId, req.requestId))
      : undefined;
  // A cancelled request ends without a result: its log goes to the memo.
  const logInResult = req.deliveryLogInResult === true && !cancellation;
  const settled = await CancellationScope.nonCancellable(() => deliverFromRequest(req, outcome, { logInResult }));
  await released;
  // In the closing workflow task: the close writes it to visibility (see InferenceRequestInput.completedStateAtClose).
  if (req.completedStateAtClose) recordCompleted();
  // Ending as Cancelled (not Completed) lets operators see it for what it is in the Temporal UI.
  if (cancellation) throw cancellation;
  return logInResult && settled ? { ...outcome, webhookDelivery: settled } : outcome;
}

/**
 * Waits until the model's admission queue gives the request a slot. With a start timeout it gives up when that
 * has passed since submit and returns the timeout outcome; undefined means the request may run.
 */
async function waitForSlot(req: InferenceRequestInput, admitted: () => boolean): Promise<RequestOutcome | undefined> {
  if (admitted()) return undefined;
  if (req.startTimeoutSeconds === undefined) {
    await condition(admitted);
    return undefined;
  }
  const inTime = await condition(admitted, startDeadlineMs(req));
  return inTime ? undefined : startTimeoutOutcome(req.startTimeoutSeconds);
}

/** Milliseconds left of the start timeout, counted from submit (the workflow's start). */
function startDeadlineMs(req: InferenceRequestInput): number {
  const deadline = workflowInfo().startTime.getTime() + (req.startTimeoutSeconds ?? 0) * 1000;
  return Math.max(1, deadline - Date.now());
}

/**
 * Gives the slot back through a local activity, within the workflow task that ends the request: a signal sent from
 * workflow code would cost this workflow two more events and one more workflow task, and the queue one signal per
 * request (the activity batches the releases of requests finishing together).
 */
async function releaseSlot(queueWorkflowId: string, requestId: string): Promise<void> {
  const { releaseSlot: release } = proxyLocalActivities<Activities>({
    startToCloseTimeout: '30s',
    scheduleToCloseTimeout: '10m',
    retry: { initialInterval: '200ms', maximumInterval: '10s' },
  });
  try {
    await release({ queueWorkflowId, requestId });
  } catch (err) {
    // The queue checks its slot holders, and frees this slot once this workflow has closed.
    log.warn('could not give the slot back to the admission queue', { queueWorkflowId, error: String(err) });
  }
}
