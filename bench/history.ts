import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Where the time of one request went, read back from its Temporal history (server clock, ms). */
export interface RequestTimeline {
  /** When the inference activity's completion was recorded: from then on the result exists. */
  resultAt?: number;
  /** Submit (client clock) to `WorkflowExecutionStarted`. */
  startedAfterSubmitMs?: number;
  /** `WorkflowExecutionStarted` to the inference activity being scheduled (first workflow task). */
  scheduleMs?: number;
  /** Of `scheduleMs`: until a worker took the first workflow task (server and matching)... */
  firstTaskDispatchMs?: number;
  /** ...and from then until the worker's completion was recorded (worker and its round trip). */
  firstTaskWorkerMs?: number;
  /** Inference scheduled to started: time in the model's task queue. */
  queueWaitMs?: number;
  /** Inference started to completed, as the server saw it. */
  inferenceMs?: number;
  /** When the webhook activity was scheduled and when a worker started it (in this history or a child's). */
  webhookScheduledAt?: number;
  webhookStartedAt?: number;
  /**
   * The webhook's first attempt ran as a local activity in the request's own workflow task (a marker, and no
   * webhook activity scheduled by the request); false for an activity, the worker's deferrals included.
   */
  firstAttemptLocal: boolean;
  /** Events in the request's history and in its child workflows' histories. */
  historyEvents: number;
  /** Workflow types involved, the request's own first. */
  workflowTypes: string[];
}

/** Epoch ms of a protobuf timestamp, keeping sub-millisecond precision. */
export function eventTimeMs(event: HistoryEvent): number | undefined {
  const ts = event.eventTime;
  if (!ts) return undefined;
  return Number(ts.seconds?.toString() ?? 0) * 1000 + (ts.nanos ?? 0) / 1e6;
}

/**
 * Reads a request's history (and its children's) and times its phases. `inferenceActivity` names the
 * activity whose completion makes the result exist; without one, the workflow's close counts.
 */
export async function requestTimeline(
  client: Client,
  workflowId: string,
  submittedAt: number,
  inferenceActivity: string,
  webhookActivity: string,
): Promise<RequestTimeline> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const timeline: RequestTimeline = { historyEvents: events.length, workflowTypes: [], firstAttemptLocal: false };
  const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const startedAt = started && eventTimeMs(started);
  const type = started?.workflowExecutionStartedEventAttributes?.workflowType?.name;
  if (type) timeline.workflowTypes.push(type);
  if (startedAt !== undefined) timeline.startedAfterSubmitMs = startedAt - submittedAt;

  const scheduled = events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === inferenceActivity,
  );
  const scheduledId = scheduled?.eventId?.toString();
  const startedEvent = events.find(
    (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduledId,
  );
  const completed = events.find(
    (e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === scheduledId,
  );
  const at = (e: HistoryEvent | undefined) => (e ? eventTimeMs(e) : undefined);
  const diff = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined ? a - b : undefined;
  timeline.scheduleMs = diff(at(scheduled), startedAt);
  const firstTaskStarted = events.find((e) => e.workflowTaskStartedEventAttributes);
  const firstTaskCompleted = events.find((e) => e.workflowTaskCompletedEventAttributes);
  timeline.firstTaskDispatchMs = diff(at(firstTaskStarted), startedAt);
  timeline.firstTaskWorkerMs = diff(at(firstTaskCompleted), at(firstTaskStarted));
  timeline.queueWaitMs = diff(at(startedEvent), at(scheduled));
  timeline.inferenceMs = diff(at(completed), at(startedEvent));
  const closed = events.find((e) => e.workflowExecutionCompletedEventAttributes);
  timeline.resultAt = at(completed) ?? at(closed);
  const findWebhook = (list: HistoryEvent[]) => {
    const sched = list.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === webhookActivity);
    if (!sched || timeline.webhookScheduledAt !== undefined) return;
    timeline.webhookScheduledAt = at(sched);
    timeline.webhookStartedAt = at(
      list.find(
        (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === sched.eventId?.toString(),
      ),
    );
  };
  findWebhook(events);
  timeline.firstAttemptLocal =
    timeline.webhookScheduledAt === undefined && events.some((e) => e.markerRecordedEventAttributes);

  for (const child of events.filter((e) => e.childWorkflowExecutionStartedEventAttributes)) {
    const attrs = child.childWorkflowExecutionStartedEventAttributes!;
    const childId = attrs.workflowExecution?.workflowId;
    if (!childId) continue;
    const childHistory = await client.workflow
      .getHandle(childId, attrs.workflowExecution?.runId ?? undefined)
      .fetchHistory();
    timeline.historyEvents += childHistory.events?.length ?? 0;
    findWebhook(childHistory.events ?? []);
    const childType = attrs.workflowType?.name;
    if (childType && !timeline.workflowTypes.includes(childType)) timeline.workflowTypes.push(childType);
  }
  return timeline;
}

/** What a system's requests cost Temporal, per request: workflow executions and history events, by workflow type. */
export interface HistoryCost {
  requests: number;
  byType: Record<string, { executionsPerRequest: number; eventsPerRequest: number; bytesPerRequest?: number }>;
  eventsPerRequest: number;
}

/**
 * Lists every workflow execution on `taskQueue` (closed and running) and divides their history
 * lengths by `requests`: a design-agnostic count of what one request makes the server store,
 * including helper workflows (queues, children) that a request's own history does not show.
 */
export async function historyCost(client: Client, taskQueue: string, requests: number): Promise<HistoryCost> {
  const byType = new Map<string, { executions: number; events: number; bytes: number }>();
  for await (const info of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
    const entry = byType.get(info.type) ?? { executions: 0, events: 0, bytes: 0 };
    // Visibility fills in history length when a workflow closes; a running one (a queue) is asked directly.
    const current =
      info.status.name === 'RUNNING' ? await client.workflow.getHandle(info.workflowId, info.runId).describe() : info;
    entry.executions++;
    entry.events += current.historyLength;
    entry.bytes += current.historySize ?? 0;
    byType.set(info.type, entry);
  }
  const per = (n: number) => Math.round((n / Math.max(1, requests)) * 100) / 100;
  let events = 0;
  const out: HistoryCost['byType'] = {};
  for (const [type, e] of byType) {
    events += e.events;
    out[type] = {
      executionsPerRequest: per(e.executions),
      eventsPerRequest: per(e.events),
      bytesPerRequest: e.bytes ? per(e.bytes) : undefined,
    };
  }
  return { requests, byType: out, eventsPerRequest: per(events) };
}
