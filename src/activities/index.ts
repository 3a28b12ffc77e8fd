import { createAdmissionActivities, type AdmissionActivityDeps } from './admission-signals';
import { createDeliverWebhook, type DeliverWebhookDeps } from './deliver-webhook';
import { createRunInference, type RunInferenceDeps } from './run-inference';
import { createSweepExpiredFiles } from './sweep-files';
import { runStartedSignal } from '../workflows/inference-request/messages';

export type ActivityDeps = RunInferenceDeps & { webhook: DeliverWebhookDeps; admission: AdmissionActivityDeps };

/** All activities, bound to their dependencies. Workflows proxy `ReturnType<typeof createActivities>`. */
export function createActivities(deps: ActivityDeps) {
  const admission = createAdmissionActivities(deps.admission);
  // The runner tells a request that waited in the task queue that its run has started (workflow id = request id).
  const reportStarted = async (requestId: string) => {
    await deps.admission.client.workflow.getHandle(requestId).signal(runStartedSignal);
  };
  return {
    runInference: createRunInference({ releaseSlot: admission.releaseSlot, reportStarted, ...deps }),
    deliverWebhook: createDeliverWebhook(deps.webhook),
    sweepExpiredFiles: createSweepExpiredFiles(deps.fileStore),
    ...admission,
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { RunInferenceInput, InferenceResult, InferenceFailureDetails, InferenceHeartbeat } from './run-inference';
export type { DeliverWebhookInput, DeliveryAttemptResult } from './deliver-webhook';
export type { SweepExpiredFilesInput, SweepResult } from './sweep-files';
export type { ReleaseSlotInput, GrantSlotsInput, GrantSlotsResult } from './admission-signals';
