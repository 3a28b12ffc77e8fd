import { chmodSync, mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_CHAOS_OPTIONS, formatChaosReport, runChaos, type ChaosReport } from '../../bench/chaos-run';
import { startServices } from '../../src/cluster/services';
import { startThrowawayTemporalCluster } from '../../src/cluster/temporal-cluster';
import { findFreePort } from '../../src/temporal/net';
import { suiteStore } from './services';

/** N = 300 by default; CLUSTER_CHAOS_REQUESTS lowers it for a quick local run. */
const REQUESTS = Number(process.env.CLUSTER_CHAOS_REQUESTS ?? 300);

// Submitting at 5/s takes a minute; the faults, the drain of the webhook retries and the settle take a few more.
jest.setTimeout(20 * 60_000);

/**
 * The chaos run on the production shape, with a PostgreSQL and a Temporal server of its own (it kills them): kill -9
 * of a model runner, the control worker, the API and the Temporal server (restarted on the same database), and one
 * PostgreSQL restart under the running server, while requests with webhooks are submitted. The processes use the
 * suite's object store, as the cluster's do.
 */
describe(`requests under faults on the cluster topology (N = ${REQUESTS})`, () => {
  let report: ChaosReport;

  beforeAll(async () => {
    const dir = mkdtempSync(join(process.env.CLUSTER_TMP_DIR!, 'chaos-'));
    chmodSync(dir, 0o755);
    const projectRoot = resolve(__dirname, '..', '..');
    const log = (line: string) => console.log(line);
    const cluster = await startThrowawayTemporalCluster({ projectRoot, dataDir: join(dir, 'cluster'), log });
    try {
      report = await runChaos({
        ...DEFAULT_CHAOS_OPTIONS,
        requests: REQUESTS,
        rate: 5,
        workerKills: 1,
        apiRestarts: 1,
        temporalKills: 1,
        runnerKills: 1,
        postgresRestarts: 1,
        receiverOutageMs: 5000,
        modelDelayMs: 200,
        webhookSchedule: '0s,1s,2s,5s,10s,10s,15s,20s,30s,30s,60s,60s',
        drainTimeoutMs: 8 * 60_000,
        workflowBundlePath: process.env.TEST_WORKFLOW_BUNDLE,
        log,
        stack: async (setup) => {
          const services = await startServices({
            projectRoot,
            dataDir: join(setup.dir, 'services'),
            address: cluster.address,
            apiPort: await findFreePort(),
            runners: 2,
            store: suiteStore(),
            workflowBundlePath: setup.env.WORKFLOW_BUNDLE_PATH,
            env: setup.env,
            log,
          });
          for (const service of services.all) {
            service.onUnplannedExit = (how, output) => setup.onUnplannedExit(service.name, how, output);
          }
          const runner = services.runners[0]!;
          return {
            apiUrl: services.apiUrl,
            faults: {
              runner: async () => {
                const pid = runner.current.pid;
                await runner.crashAndRestart(1000);
                return `kill -9 ${runner.name} pid ${pid}; back as pid ${runner.current.pid}`;
              },
              worker: async () => {
                const pid = services.worker.current.pid;
                await services.worker.crashAndRestart(1000);
                return `kill -9 control worker pid ${pid}; back as pid ${services.worker.current.pid}`;
              },
              api: async () => {
                const pid = services.api.current.pid;
                await services.api.crashAndRestart(500);
                return `kill -9 API pid ${pid}; back as pid ${services.api.current.pid}`;
              },
              temporal: async () => {
                const pid = cluster.temporal.pid;
                await cluster.restartTemporal(1000);
                return `kill -9 Temporal server pid ${pid}; restarted on the same database as pid ${cluster.temporal.pid}`;
              },
              postgres: async () => {
                const pid = cluster.postgres.pid;
                // Down long enough for starts to fail ("context deadline exceeded" → the API's 503 and retries).
                await cluster.postgres.stop();
                await sleep(3000);
                await cluster.postgres.start();
                return `PostgreSQL pid ${pid} stopped (fast shutdown) for 3 s and restarted as pid ${cluster.postgres.pid}`;
              },
            },
            stop: () => services.stop(),
          };
        },
      });
      console.log(formatChaosReport(report));
    } finally {
      await cluster.stop();
    }
  });

  it('injected every fault: runner, control worker, API, Temporal server, PostgreSQL, receiver', () => {
    expect(report.faults.map((f) => f.kind)).toEqual(
      expect.arrayContaining([
        'kill-runner',
        'kill-worker',
        'kill-api',
        'kill-temporal',
        'restart-postgres',
        'receiver-down',
        'receiver-up',
      ]),
    );
  });

  it('loses nothing: every acknowledged request completes and its webhook is accepted', () => {
    expect(report.acknowledged).toBe(REQUESTS);
    expect(report.lostIds).toEqual([]);
    expect(report.delivered).toBe(REQUESTS);
    expect(report.terminalOk).toBe(REQUESTS);
    expect(report.drainTimedOut).toBe(false);
  });

  it('delivers nothing it was not asked for, and every webhook carries its own request’s payload', () => {
    expect(report.unexpectedSamples).toEqual([]);
  });
});
