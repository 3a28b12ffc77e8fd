import type { Client } from '@temporalio/client';
import { eventually } from './stack';

/**
 * Proofs from a workflow's own history, which the server writes before it answers (unlike visibility, which
 * catches up later): what a workflow did, or has not done, does not depend on when the test looks.
 */

/** The names of the activities the workflow has scheduled so far, in order. */
export async function scheduledActivities(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    return name ? [name] : [];
  });
}

/** Resolves once the workflow has closed (however it ended): from then on its history can only stay as it is. */
export async function closed(client: Client, workflowId: string): Promise<void> {
  await client.workflow
    .getHandle(workflowId)
    .result()
    .catch(() => undefined);
}

/**
 * Resolves once the workflow has completed `n` workflow tasks: every decision it took up to then is in its
 * history. A workflow that then waits on a signal takes no further decision until the signal arrives.
 */
export async function workflowTasksCompleted(client: Client, workflowId: string, n = 1): Promise<void> {
  await eventually(async () => {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const done = (history.events ?? []).filter((e) => e.workflowTaskCompletedEventAttributes).length;
    return done >= n ? true : undefined;
  });
}

/** The attempt numbers with which each run of activity `name` started (a retried run shows 1, 2, ...). */
export async function startedAttempts(client: Client, workflowId: string, name: string): Promise<number[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const ofName = new Set(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name)
      .map((e) => String(e.eventId)),
  );
  return events.flatMap((e) => {
    const started = e.activityTaskStartedEventAttributes;
    return started && ofName.has(String(started.scheduledEventId)) ? [started.attempt ?? 0] : [];
  });
}
