import { getEventListeners } from 'node:events';
import { Connection } from '@temporalio/client';
import { withLinkedAbortSignal } from '../../src/temporal/abort';

let connection: Connection;

beforeAll(async () => {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is unset: run the tests through jest (global setup)');
  connection = await Connection.connect({ address });
});

afterAll(async () => {
  await connection?.close();
});

describe('withLinkedAbortSignal', () => {
  it('leaves no listener on a long-lived signal after its calls end', async () => {
    const lifetime = new AbortController();
    for (let i = 0; i < 20; i++) {
      await withLinkedAbortSignal(connection, lifetime.signal, async () => {
        await connection.workflowService.getSystemInfo({});
        await connection.workflowService.getSystemInfo({});
      });
    }
    await expect(
      withLinkedAbortSignal(connection, lifetime.signal, () =>
        connection.workflowService.describeNamespace({ namespace: 'no-such-namespace' }),
      ),
    ).rejects.toThrow();
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0);
  });

  it('cancels a call in flight when the signal aborts', async () => {
    const lifetime = new AbortController();
    // A long poll on a queue nobody writes to: it would wait about a minute unless cancelled.
    const poll = withLinkedAbortSignal(connection, lifetime.signal, () =>
      connection.workflowService.pollWorkflowTaskQueue({
        namespace: 'default',
        taskQueue: { name: `abort-test-${Date.now()}` },
        identity: 'abort-test',
      }),
    );
    lifetime.abort();
    await expect(poll).rejects.toThrow(/cancel/i);
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0);
  });

  it('does not start calls when the signal is already aborted', async () => {
    const lifetime = new AbortController();
    lifetime.abort(new Error('closing'));
    const call = jest.fn(() => connection.workflowService.getSystemInfo({}));
    await expect(withLinkedAbortSignal(connection, lifetime.signal, call)).rejects.toThrow('closing');
    expect(call).not.toHaveBeenCalled();
  });
});
