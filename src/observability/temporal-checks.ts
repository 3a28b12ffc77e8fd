import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { modelTaskQueue, type ModelRegistry } from '../models/registry';
import type { QueueProbe } from './metrics';
import { FalModelId, FalState, FalStateValue } from '../workflows/shared/search-attributes';
import { REQUEST_SEARCH_ATTRIBUTES, searchAttributeCreateCommands } from './search-attributes';

/** What these checks call: a client `Connection`, or the `NativeConnection` an API shares with its workers. */
type TemporalConnection = Pick<Connection, 'workflowService' | 'operatorService' | 'withDeadline'>;

/** Thrown at start when the namespace lacks our search attributes; the message has the commands that add them. */
export class SearchAttributesMissingError extends Error {
  override name = 'SearchAttributesMissingError';
}

/** Resolves when the frontend answers for `namespace` within `timeoutMs` (what `/readyz` reports). */
export async function checkTemporalReady(
  connection: TemporalConnection,
  namespace: string,
  timeoutMs: number,
): Promise<void> {
  await connection.withDeadline(Date.now() + timeoutMs, () =>
    connection.workflowService.describeNamespace({ namespace }),
  );
}

/**
 * Refuses to start against a namespace without our search attributes: starting a workflow with
 * unknown attributes fails every submit, so this says so once, at start, with the fix.
 */
export async function assertSearchAttributes(connection: TemporalConnection, namespace: string): Promise<void> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const registered = customAttributes ?? {};
  const missing = REQUEST_SEARCH_ATTRIBUTES.filter((key) => registered[key.name] === undefined);
  if (missing.length === 0) return;
  throw new SearchAttributesMissingError(
    [
      `Temporal namespace "${namespace}" lacks the search attributes ${missing.map((k) => k.name).join(', ')}.`,
      'Register them once (an operator task), e.g. with the Temporal CLI:',
      ...searchAttributeCreateCommands(namespace)
        .filter((cmd) => missing.some((k) => cmd.includes(`--name ${k.name} `)))
        .map((cmd) => `  ${cmd}`),
      'or set TEMPORAL_SEARCH_ATTRIBUTES=false to run without them.',
    ].join('\n'),
  );
}

/** Pages of waiting requests read to find the oldest one; past this the age is a lower bound. */
const MAX_PAGES = 5;

/**
 * Each model's queue, at scrape time: requests waiting for a slot (visibility: `FalState='IN_QUEUE'`,
 * still running) plus runs waiting for a runner (the model task queue's backlog, from
 * `DescribeTaskQueue` with `reportStats`), and the age of the oldest of either.
 * Without search attributes only the backlog is known.
 */
export function queueDepthProbe(
  connection: TemporalConnection,
  options: {
    namespace: string;
    taskQueue: string;
    registry: ModelRegistry;
    searchAttributes: boolean;
    timeoutMs?: number;
  },
): QueueProbe {
  const { TaskQueueKind, TaskQueueType } = temporal.api.enums.v1;
  const { namespace } = options;
  const call = <T>(fn: () => Promise<T>) => connection.withDeadline(Date.now() + (options.timeoutMs ?? 3_000), fn);

  const backlog = async (modelId: string) => {
    const res = await call(() =>
      connection.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: modelTaskQueue(options.taskQueue, modelId), kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        reportStats: true,
      }),
    );
    const age = res.stats?.approximateBacklogAge;
    return {
      depth: Number(res.stats?.approximateBacklogCount ?? 0),
      ageSeconds: age ? Number(age.seconds ?? 0) + (age.nanos ?? 0) / 1e9 : 0,
    };
  };

  const waitingForSlot = async (modelId: string) => {
    const query = `${FalModelId.name} = '${modelId}' AND ${FalState.name} = '${FalStateValue.InQueue}' AND ExecutionStatus = 'Running'`;
    const { count } = await call(() => connection.workflowService.countWorkflowExecutions({ namespace, query }));
    const depth = Number(count ?? 0);
    if (depth === 0) return { depth, ageSeconds: 0 };
    // Visibility lists newest first: the oldest waiting request is on the last page.
    let oldest: number | undefined;
    let nextPageToken: Uint8Array | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await call(() =>
        connection.workflowService.listWorkflowExecutions({ namespace, query, pageSize: 1000, nextPageToken }),
      );
      for (const execution of res.executions ?? []) {
        const started = Number(execution.startTime?.seconds ?? 0) * 1000;
        if (started > 0 && (oldest === undefined || started < oldest)) oldest = started;
      }
      nextPageToken = res.nextPageToken?.length ? res.nextPageToken : undefined;
      if (!nextPageToken) break;
    }
    return { depth, ageSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000) };
  };

  return async () =>
    Promise.all(
      options.registry.list().map(async (model) => {
        const [runs, slots] = await Promise.all([
          backlog(model.id),
          options.searchAttributes ? waitingForSlot(model.id) : { depth: 0, ageSeconds: 0 },
        ]);
        return {
          model: model.id,
          depth: runs.depth + slots.depth,
          oldestAgeSeconds: Math.max(runs.ageSeconds, slots.ageSeconds),
        };
      }),
    );
}
