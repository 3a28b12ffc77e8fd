import { Client, Connection } from '@temporalio/client';
import type { RunnerOptions } from '../../src/models/runners';
import { startGatedBackend, type GatedBackend } from './gated-backend';
import { respondJson, startLoopbackServer, type LoopbackServer } from './http-peers';
import { startStack, type Stack } from './stack';

type Handler = Parameters<typeof startLoopbackServer>[0];

/** The peers a test's models point at, started before the stack. */
export interface FixturePeers {
  /** A model backend that holds every call until the test releases it. */
  backend: GatedBackend;
  /** A webhook receiver that records what it gets. */
  receiver: LoopbackServer;
}

export interface FixtureOptions {
  /** The models file, built from the peers (point a model's backend at `backend.url`). */
  models: (peers: FixturePeers) => unknown;
  /** Extra environment of the stack. */
  env?: Record<string, string>;
  /** Start in-process workers (default true). */
  workers?: boolean;
  /** Code-only options of the in-process model runners (built-in hooks that hold a run). */
  runnerOptions?: RunnerOptions;
  /** How the webhook receiver answers. @default 200 with `{}` */
  receiver?: Handler;
}

/** What {@link useStack} gives a test file; usable from the first test on (throws if read earlier). */
export interface StackFixture extends FixturePeers {
  stack: Stack;
  /** A client of the suite's Temporal server, for proofs from workflow histories. */
  temporal: Client;
}

/**
 * The stack of one test file with its usual peers: a gated backend, a webhook receiver, the API and workers, and a
 * Temporal client. Started in `beforeAll`, stopped in `afterAll` (stack first, so no worker is left calling a peer
 * that is gone). Call it inside the `describe` (or at the top of the file); a `beforeAll` registered before it runs
 * first, so `models` may use other servers the file starts there.
 */
export function useStack(options: FixtureOptions): StackFixture {
  let backend: GatedBackend | undefined;
  let receiver: LoopbackServer | undefined;
  let stack: Stack | undefined;
  let connection: Connection | undefined;
  let temporal: Client | undefined;

  beforeAll(async () => {
    backend = await startGatedBackend();
    receiver = await startLoopbackServer(options.receiver ?? respondJson(200, {}));
    stack = await startStack({
      models: options.models({ backend, receiver }),
      env: options.env,
      workers: options.workers,
      runnerOptions: options.runnerOptions,
    });
    connection = await Connection.connect({ address: stack.config.temporal.address! });
    temporal = new Client({ connection, namespace: stack.config.temporal.namespace });
  });
  afterAll(async () => {
    await stack?.stop();
    await connection?.close();
    await backend?.close();
    await receiver?.close();
  });

  const started = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`useStack: ${name} is read before beforeAll started it`);
    return value;
  };
  return {
    get stack() {
      return started(stack, 'stack');
    },
    get backend() {
      return started(backend, 'backend');
    },
    get receiver() {
      return started(receiver, 'receiver');
    },
    get temporal() {
      return started(temporal, 'temporal');
    },
  };
}
