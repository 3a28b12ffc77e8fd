/**
 * The client half of the request search attributes (keys and workflow half: `src/workflows/shared/search-attributes.ts`):
 * registering them on a cluster, and the values a request starts with.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { FalErrorType, FalModelId, FalOwner, FalState, FalStateValue } from '../workflows/shared/search-attributes';

/** Every request search attribute, as `temporal operator search-attribute create` takes them. */
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

/**
 * The attributes a request starts with; `dispatched` when its run is scheduled at once (a slot taken at
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
