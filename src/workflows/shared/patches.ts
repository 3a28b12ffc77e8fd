/**
 * Every `patched()` id in one place: a change to the commands a workflow issues is made behind one of these, so the
 * runs already in flight (and the recorded histories in `test/fixtures/histories`) replay unchanged. A patch is
 * removed (with `deprecatePatch` first) only once no run that predates it can still be open.
 */
export const Patch = {
  /** A request that hands its webhook to a delivery workflow replaces its memo's log with a pointer to it. */
  RequestMemoPointsToDelivery: 'request-memo-points-to-delivery',
} as const;
export type Patch = (typeof Patch)[keyof typeof Patch];
