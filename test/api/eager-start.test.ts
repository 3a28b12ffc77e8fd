import { processMetrics } from '../../src/observability/metrics';
import { startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const EAGER = 'acme/noop-eager';
const SHARED = 'acme/noop-shared';
const SEPARATE = 'acme/noop-separate';
const noop = (id: string) => ({ models: [{ id, backend: { kind: 'builtin', name: 'noop' } }] });

/** This process's count of submits whose first workflow task came back with the start, for one model. */
async function startedEagerly(model: string): Promise<number> {
  const { values } = await processMetrics().startedEagerly.get();
  return values.find((v) => v.labels.model === model)?.value ?? 0;
}

async function completeThree(stack: Stack, model: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const { request_id } = await submitJson(stack, `/${model}`, { i });
    const status = await waitCompleted(stack, model, request_id);
    expect(status.error).toBeUndefined();
  }
}

describe('eager workflow start: an API on its control worker’s connection', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('with TEMPORAL_EAGER_START, hands each request’s first workflow task to the control worker of its process with the start', async () => {
    stack = await startStack({ models: noop(EAGER), shareConnection: true, env: { TEMPORAL_EAGER_START: 'true' } });
    await completeThree(stack, EAGER);
    expect(await startedEagerly(EAGER)).toBe(3);
  });

  it('by default, dispatches them through the server even on a shared connection', async () => {
    stack = await startStack({ models: noop(SHARED), shareConnection: true });
    await completeThree(stack, SHARED);
    expect(await startedEagerly(SHARED)).toBe(0);
  });

  it('starts nothing eagerly on a connection of the API’s own (workers elsewhere), whatever the setting', async () => {
    stack = await startStack({ models: noop(SEPARATE), env: { TEMPORAL_EAGER_START: 'true' } });
    await completeThree(stack, SEPARATE);
    expect(await startedEagerly(SEPARATE)).toBe(0);
  });
});
