import { proxyActivities } from '@temporalio/workflow';
import type { LatencyActivities } from './activities';

const { echo } = proxyActivities<LatencyActivities>({ startToCloseTimeout: '10 seconds' });

/** One activity and nothing else: the least a request costs the server (two workflow tasks, one activity task). */
export async function oneActivity(value: number): Promise<number> {
  return echo(value);
}

/** No activity: one workflow task. */
export async function noActivity(value: number): Promise<number> {
  return value;
}
