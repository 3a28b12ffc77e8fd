import type { Client } from '@temporalio/client';
import { EAGER_AUTO_MAX_IN_FLIGHT, RequestsClient } from '../../src/client/requests';
import { ModelRegistry } from '../../src/models/registry';

const MODEL = 'acme/noop';

/**
 * A client whose starts wait until the test answers them, and which records whether each asked for an eager start:
 * the rule under test is the API's own bookkeeping, before anything reaches Temporal.
 */
function holdingClient() {
  const calls: { eager: boolean | undefined; answer: () => void }[] = [];
  const client = {
    workflow: {
      start: (_type: string, options: { requestEagerStart?: boolean }) =>
        new Promise((resolve) => {
          calls.push({ eager: options.requestEagerStart, answer: () => resolve({ eagerlyStarted: false }) });
        }),
    },
  } as unknown as Client;
  return { client, calls };
}

function requestsWith(client: Client, eagerStart: boolean | 'auto'): RequestsClient {
  return new RequestsClient(client, {
    taskQueue: 'control',
    registry: ModelRegistry.fromObject({ models: [{ id: MODEL, backend: { kind: 'builtin', name: 'noop' } }] }),
    webhook: { scheduleMs: [0], attemptTimeoutMs: 1000, maxPayloadBytes: 1024 },
    eagerStart,
  });
}

/** Lets the submits run up to their start call. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("eagerStart: 'auto'", () => {
  it('asks for an eager start only while fewer than EAGER_AUTO_MAX_IN_FLIGHT other starts are in flight', async () => {
    const { client, calls } = holdingClient();
    const requests = requestsWith(client, 'auto');
    const submit = () => requests.submit({ owner: 'acme', modelId: MODEL, input: {} });

    const burst = Array.from({ length: EAGER_AUTO_MAX_IN_FLIGHT + 2 }, submit);
    await settle();
    expect(calls.map((c) => c.eager)).toEqual([...Array<boolean>(EAGER_AUTO_MAX_IN_FLIGHT).fill(true), false, false]);

    // Once they are answered, a submit alone is eager again.
    for (const call of calls) call.answer();
    await Promise.all(burst);
    const alone = submit();
    await settle();
    expect(calls.at(-1)?.eager).toBe(true);
    calls.at(-1)?.answer();
    await alone;
  });

  it('counts a start that failed as no longer in flight', async () => {
    let fail = true;
    const seen: (boolean | undefined)[] = [];
    const client = {
      workflow: {
        start: async (_type: string, options: { requestEagerStart?: boolean }) => {
          seen.push(options.requestEagerStart);
          if (fail) throw new Error('unavailable');
          return { eagerlyStarted: true };
        },
      },
    } as unknown as Client;
    const requests = requestsWith(client, 'auto');
    await expect(requests.submit({ owner: 'acme', modelId: MODEL, input: {} })).rejects.toThrow('unavailable');
    fail = false;
    await requests.submit({ owner: 'acme', modelId: MODEL, input: {} });
    expect(seen).toEqual([true, true]);
  });

  it('true and false ask for it always and never, whatever is in flight', async () => {
    for (const mode of [true, false]) {
      const { client, calls } = holdingClient();
      const requests = requestsWith(client, mode);
      const burst = Array.from({ length: 3 }, () => requests.submit({ owner: 'acme', modelId: MODEL, input: {} }));
      await settle();
      expect(calls.map((c) => c.eager)).toEqual([mode, mode, mode]);
      for (const call of calls) call.answer();
      await Promise.all(burst);
    }
  });
});
