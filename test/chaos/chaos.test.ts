import { DEFAULT_CHAOS_OPTIONS, runChaos, type ChaosReport } from '../../bench/chaos-run';

// Two service restarts under load on a 2-core machine take tens of seconds; the run itself bounds its drain.
jest.setTimeout(150_000);

describe('requests under faults (the small chaos run)', () => {
  let report: ChaosReport;

  beforeAll(async () => {
    report = await runChaos({
      ...DEFAULT_CHAOS_OPTIONS,
      requests: 30,
      rate: 6,
      workerKills: 1,
      apiRestarts: 1,
      // The suite's dev server is shared by every test file: it is not ours to kill.
      temporalKills: 0,
      temporalAddress: process.env.TEST_TEMPORAL_ADDRESS,
      workflowBundlePath: process.env.TEST_WORKFLOW_BUNDLE,
      receiverOutageMs: 3000,
      webhookSchedule: '0s,500ms,1s,1s,2s,2s,5s,5s,10s,10s,10s',
      webhookTimeoutMs: 2000,
      drainTimeoutMs: 60_000,
      settleMs: 1000,
    });
  });

  it('injected the faults: worker kill -9, API kill -9 and restart, receiver outage', () => {
    expect(report.faults.map((f) => f.kind)).toEqual(
      expect.arrayContaining(['kill-worker', 'kill-api', 'receiver-down', 'receiver-up']),
    );
  });

  it('loses no acknowledged request: each one completes and its webhook is accepted', () => {
    expect(report.acknowledged).toBe(30);
    expect(report.lostIds).toEqual([]);
    expect(report.delivered).toBe(30);
    expect(report.terminalOk).toBe(30);
  });

  it('delivers nothing it was not asked for, and every webhook carries its own request’s payload', () => {
    expect(report.unexpectedSamples).toEqual([]);
  });
});
