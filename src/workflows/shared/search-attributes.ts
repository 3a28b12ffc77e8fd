/**
 * The custom search attributes every request workflow carries, so the Temporal UI and
 * `temporal workflow list --query "FalModelId='fal-ai/esrgan' AND FalState='IN_QUEUE'"` filter requests: their keys,
 * and the workflow's half (upserting the state). The client half (registering them, a request's first values) is
 * `src/observability/search-attributes.ts`.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { RequestErrorType } from './errors';

/** Full model id, `owner/app[/path]`. */
export const FalModelId = defineSearchAttributeKey('FalModelId', 'KEYWORD');
/** Owner of the API key that submitted the request. */
export const FalOwner = defineSearchAttributeKey('FalOwner', 'KEYWORD');
/**
 * `IN_QUEUE`, `DISPATCHED` or `COMPLETED` ({@link FalStateValue}). Queue positions and `fal_max_queue_length` count
 * the `IN_QUEUE` ones (docs/queue.md).
 */
export const FalState = defineSearchAttributeKey('FalState', 'KEYWORD');
/** Set when a request ends in error: its {@link RequestErrorType} (`error_type` of the API). */
export const FalErrorType = defineSearchAttributeKey('FalErrorType', 'KEYWORD');

/** Values of {@link FalState}. */
export const FalStateValue = {
  /** Submitted; no runner has its run yet (in the task queue, or waiting for a slot of an admission workflow). */
  InQueue: 'IN_QUEUE',
  /**
   * A runner has its run: it reported the start (`runStarted`). For a request of an admission workflow, or one an
   * older API submitted: its run is on the model's task queue, waiting for a runner or running.
   */
  Dispatched: 'DISPATCHED',
  Completed: 'COMPLETED',
} as const;
export type FalStateValue = (typeof FalStateValue)[keyof typeof FalStateValue];

/**
 * Records a state change of the running request. Does nothing for a request started
 * without our attributes (TEMPORAL_SEARCH_ATTRIBUTES=false, or started before they existed), which
 * also keeps such histories replaying unchanged.
 */
export function upsertRequestState(state: FalStateValue, errorType?: RequestErrorType): void {
  const current = workflowInfo().typedSearchAttributes.get(FalState);
  // Every upsert is a history event and a visibility write: none for a value that is already there.
  if (current === undefined || (current === state && errorType === undefined)) return;
  upsertSearchAttributes([
    { key: FalState, value: state },
    ...(errorType === undefined ? [] : [{ key: FalErrorType, value: errorType }]),
  ]);
}
