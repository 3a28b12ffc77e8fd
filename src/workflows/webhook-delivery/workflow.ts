import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { jittered, recordAttempt, reportDeliveryEnded } from './delivery';
import {
  AttemptTrigger,
  DeliveryState,
  deliveryReportQuery,
  redeliverSignal,
  trimmedLog,
  type DeliveryReport,
  type WebhookDeliveryInput,
} from './messages';

/** History length at which a run continues as new; a run of the default schedule stays far below it. */
const DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 2000;

/**
 * Delivers one webhook on a durable schedule: each attempt is an activity, each wait a Temporal
 * timer, so worker or server restarts resume the schedule where it was. Every attempt is recorded
 * in the memo (see {@link DeliveryReport}); {@link redeliverSignal} adds an attempt on demand. Redeliveries grow the
 * history, so a long one continues as new, carrying the schedule and the log (its latest attempts, the others counted).
 */
export async function webhookDelivery(input: WebhookDeliveryInput): Promise<DeliveryReport> {
  const report: DeliveryReport = {
    url: input.url,
    state: DeliveryState.Retrying,
    ...trimmedLog([...(input.previousAttempts ?? [])], input.earlierAttempts),
    nextAttemptAt: input.firstAttemptAt === undefined ? undefined : new Date(input.firstAttemptAt).toISOString(),
  };
  let redeliveryRequested = false;
  setHandler(deliveryReportQuery, () => report);
  setHandler(redeliverSignal, () => {
    redeliveryRequested = true;
  });

  const continueAfter = input.continueAsNewAfterEvents ?? DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS;
  let scheduled = 0;
  let dueAt: number | undefined =
    input.firstAttemptAt ?? (input.scheduleMs.length > 0 ? Date.now() + jittered(input.scheduleMs[0] ?? 0) : undefined);
  for (;;) {
    if (!redeliveryRequested) {
      if (dueAt === undefined) break;
      if (workflowInfo().historyLength >= continueAfter || workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        return continueAsNew<typeof webhookDelivery>({
          ...input,
          // What the schedule still holds: the next one is due at `dueAt`, the later ones keep their delays.
          scheduleMs: input.scheduleMs.slice(scheduled),
          firstAttemptAt: dueAt,
          previousAttempts: report.attempts,
          earlierAttempts: report.earlierAttempts,
          resultAt: input.resultAt ?? workflowInfo().startTime.getTime(),
        });
      }
      const wait = dueAt - Date.now();
      // Woken early by a redelivery request: that attempt goes first, the scheduled one stays due.
      if (wait > 0 && (await condition(() => redeliveryRequested, wait))) continue;
    }
    const trigger = redeliveryRequested ? AttemptTrigger.Redelivery : AttemptTrigger.Schedule;
    if (trigger === AttemptTrigger.Redelivery) redeliveryRequested = false;
    else scheduled++;
    dueAt = await recordAttempt(
      input,
      report,
      trigger,
      trigger === AttemptTrigger.Schedule ? { nextDelayMs: input.scheduleMs[scheduled] } : { keepDueAt: dueAt },
    );
  }
  reportDeliveryEnded(report, input.resultAt ?? workflowInfo().startTime.getTime());
  return report;
}
