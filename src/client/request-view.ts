import type { LogEntry, QueueStatus, RequestOutcome } from '../workflows/shared/request';

/** A request as the queue API reports it. */
export type RequestView =
  | { requestId: string; modelId: string; status: typeof QueueStatus.InQueue; queuePosition: number; logs: LogEntry[] }
  | { requestId: string; modelId: string; status: typeof QueueStatus.InProgress; logs: LogEntry[] }
  | { requestId: string; modelId: string; status: typeof QueueStatus.Completed; outcome: RequestOutcome };
