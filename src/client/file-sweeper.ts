import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { fileSweep } from '../workflows/file-sweep';

export interface FileSweeperOptions {
  /** The control task queue: the sweep runs where the control worker (and the files) are. */
  taskQueue: string;
  /** Time between two sweeps. */
  everyMs: number;
}

/** Id of the sweeper's schedule; one per control task queue, so deployments sharing a namespace stay apart. */
export function fileSweeperScheduleId(taskQueue: string): string {
  return `${taskQueue}:file-sweeper`;
}

/**
 * Makes sure the Temporal Schedule that deletes expired files exists with these settings. Every
 * control worker calls it at start: the first creates the schedule, the others bring it up to date,
 * and it lives on in Temporal whether or not any worker is running.
 */
export async function ensureFileSweeper(client: Client, options: FileSweeperOptions): Promise<void> {
  const scheduleId = fileSweeperScheduleId(options.taskQueue);
  const spec = { intervals: [{ every: options.everyMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: fileSweep,
    workflowId: `${options.taskQueue}:file-sweep`,
    taskQueue: options.taskQueue,
    // A sweep stuck without a worker is given up eventually, so the schedule can start a fresh one.
    workflowExecutionTimeout: Math.max(10 * options.everyMs, 600_000),
  };
  // One sweep at a time; after an outage, one catch-up sweep is as good as many.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(options.everyMs, 60_000) };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, policies }));
  }
}
