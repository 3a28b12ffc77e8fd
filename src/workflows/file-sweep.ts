import { proxyActivities } from '@temporalio/workflow';
import type { Activities, SweepResult } from '../activities';

const { sweepExpiredFiles } = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  retry: { maximumAttempts: 3, initialInterval: '5s' },
});

/**
 * One pass of the file sweeper: deletes the stored files whose lifetime has ended. The schedule
 * from `ensureFileSweeper` starts it on the control task queue, where the activity reaches the files.
 */
export async function fileSweep(): Promise<SweepResult> {
  return sweepExpiredFiles({});
}
