/**
 * The custom search attributes every request workflow carries, so the Temporal UI and
 * `temporal workflow list --query "FalModelId='fal-ai/esrgan' AND FalState='IN_QUEUE'"` filter requests.
 *
 * This module is loaded by the workflow bundle too: no Node imports.
 */
import { defineSearchAttributeKey, type SearchAttributePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';

/** Full model id, `owner/app[/path]`. */
export const FalModelId = defineSearchAttributeKey('FalModelId', 'KEYWORD');
/** Owner of the API key that submitted the request. */
export const FalOwner = defineSearchAttributeKey('FalOwner', 'KEYWORD');
/**
 * `IN_QUEUE`, `DISPATCHED` or `COMPLETED` ({@link FalStateValue}). The workflow is not told when a
 * runner picks its run up, so fal's `IN_PROGRESS` only shows in the status API, never here.
 */
export const FalState = defineSearchAttributeKey('FalState', 'KEYWORD');
/** Set when a request ends in error: `validation_error`, `runner_error`, `cancelled`, ... (`error_type` of the API). */
export const FalErrorType = defineSearchAttributeKey('FalErrorType', 'KEYWORD');

/** Every attribute above, as `temporal operator search-attribute create` takes them. */
export const REQUEST_SEARCH_ATTRIBUTES = [FalModelId, FalOwner, FalState, FalErrorType] as const;

/** The CLI's spelling of each type (`--type Keyword`), for launchers and messages. */
export const SEARCH_ATTRIBUTE_CLI_TYPES: Record<string, 'Keyword'> = Object.fromEntries(
  REQUEST_SEARCH_ATTRIBUTES.map((key) => [key.name, 'Keyword' as const]),
);

/** The commands that register the attributes on an existing cluster. */
export function searchAttributeCreateCommands(namespace: string): string[] {
  return REQUEST_SEARCH_ATTRIBUTES.map(
    (key) =>
      `temporal operator search-attribute create --namespace ${namespace} --name ${key.name} --type ${SEARCH_ATTRIBUTE_CLI_TYPES[key.name]}`,
  );
}

/** Values of {@link FalState}. */
export const FalStateValue = {
  /** Submitted; waiting for a slot of its model (models with a concurrency limit). */
  InQueue: 'IN_QUEUE',
  /** Its run is on the model's task queue: waiting for a runner, or running. */
  Dispatched: 'DISPATCHED',
  Completed: 'COMPLETED',
} as const;
export type FalStateValue = (typeof FalStateValue)[keyof typeof FalStateValue];

/**
 * Workflow side: records a state change of the running request. Does nothing for a request started
 * without our attributes (TEMPORAL_SEARCH_ATTRIBUTES=false, or started before they existed), which
 * also keeps such histories replaying unchanged.
 */
export function upsertRequestState(state: FalStateValue, errorType?: string): void {
  const current = workflowInfo().typedSearchAttributes.get(FalState);
  // Every upsert is a history event and a visibility write: none for a value that is already there.
  if (current === undefined || (current === state && errorType === undefined)) return;
  upsertSearchAttributes([
    { key: FalState, value: state },
    ...(errorType === undefined ? [] : [{ key: FalErrorType, value: errorType }]),
  ]);
}

/**
 * Client side: the attributes a request starts with; `dispatched` when its run is scheduled at once (a slot taken at
 * submit, or a model without a concurrency limit), which spares the workflow an upsert.
 */
export function initialRequestSearchAttributes(
  owner: string,
  modelId: string,
  dispatched = false,
): SearchAttributePair[] {
  return [
    { key: FalModelId, value: modelId },
    { key: FalOwner, value: owner },
    { key: FalState, value: dispatched ? FalStateValue.Dispatched : FalStateValue.InQueue },
  ];
}
