import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './activities';

// The queue's workflows, in the same bundle as the application's own.
export * from 'fal-queue-temporal/workflows';

const { greet } = proxyActivities<typeof activities>({ startToCloseTimeout: '10 seconds' });

/** A workflow of the application. */
export async function greeting(name: string): Promise<string> {
  return greet(name);
}
