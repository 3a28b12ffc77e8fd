import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { KeyedBatcher } from '../client/batcher';
import { releaseSignal } from '../workflows/admission-queue/messages';
import { admittedSignal } from '../workflows/inference-request/messages';

export interface AdmissionActivityDeps {
  /** The worker process's client (on its worker connection). */
  client: Client;
}

export interface ReleaseSlotInput {
  /** The model's admission queue. */
  queueWorkflowId: string;
  requestId: string;
}

export interface GrantSlotsInput {
  requestIds: string[];
}

export interface GrantSlotsResult {
  /** Requests without a running workflow: not started (yet), finished, or terminated. */
  missing: string[];
  /** Requests the signal did not reach for another reason (Temporal busy or unreachable): try again. */
  failed: string[];
}

/**
 * Release signals one worker process keeps in flight per admission queue; releases arriving meanwhile go together in
 * the next signal, so many requests finishing at once cost the queue one history event (and one transaction) instead
 * of one each. More than one in flight keeps a slow signal from holding up the workflow tasks that wait on it.
 */
const RELEASES_IN_FLIGHT_PER_QUEUE = 4;

/**
 * The admission queue's messages, as local activities on the control worker: cheaper than signals sent from
 * workflow code, which add events and a workflow task to both sides.
 */
export function createAdmissionActivities(deps: AdmissionActivityDeps) {
  const releases = new KeyedBatcher<string, void>({
    maxInFlight: RELEASES_IN_FLIGHT_PER_QUEUE,
    async send(queueWorkflowId, requestIds) {
      await deps.client.workflow.getHandle(queueWorkflowId).signal(releaseSignal, requestIds);
      return requestIds.map(() => undefined);
    },
  });

  return {
    /** Gives a request's place or slot back to its model's queue; a queue that no longer runs has nothing to give. */
    async releaseSlot({ queueWorkflowId, requestId }: ReleaseSlotInput): Promise<void> {
      try {
        await releases.add(queueWorkflowId, requestId);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },

    /** Tells requests they hold a slot; the same signal tells the queue which of them have no workflow. */
    async grantSlots({ requestIds }: GrantSlotsInput): Promise<GrantSlotsResult> {
      const results = await Promise.allSettled(
        requestIds.map((id) => deps.client.workflow.getHandle(id).signal(admittedSignal)),
      );
      const missing: string[] = [];
      const failed: string[] = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') return;
        (r.reason instanceof WorkflowNotFoundError ? missing : failed).push(requestIds[i]!);
      });
      return { missing, failed };
    },
  };
}
