import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, LOCAL_DEV_KEY, loadConfig, parseDuration } from '../src/config';
import { EnvSchema } from '../src/config/env';

describe('configuration from the environment', () => {
  it('documents every variable it reads in a table of docs/operations.md', () => {
    const docs = readFileSync(join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
    const tableCells = new Set(
      docs
        .split('\n')
        .filter((line) => line.startsWith('|'))
        .flatMap((line) => [...line.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1])),
    );
    expect(Object.keys(EnvSchema.shape).filter((name) => !tableCells.has(name))).toEqual([]);
  });

  it('has defaults that run locally: port 8080, the dev key, the Standard Webhooks schedule', () => {
    const config = loadConfig({}, '/srv');
    expect(config.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.apiKeys).toEqual([{ id: 'local', secret: 'local-secret', owner: 'local' }]);
    expect(`${config.apiKeys[0]!.id}:${config.apiKeys[0]!.secret}`).toBe(LOCAL_DEV_KEY);
    expect(config.webhook.scheduleMs).toHaveLength(10);
    expect(config.webhook.scheduleMs.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(24 * 3600 * 1000);
    expect(config.dataDir).toBe('/srv/.data');
    expect(config.temporal.address).toBeUndefined();
  });

  it('reads keys with owners and a custom schedule', () => {
    const config = loadConfig({ API_KEYS: 'k1:s1:team-a, k2:s2', WEBHOOK_SCHEDULE: '0s,1s,2m' });
    expect(config.apiKeys).toEqual([
      { id: 'k1', secret: 's1', owner: 'team-a' },
      { id: 'k2', secret: 's2', owner: 'k2' },
    ]);
    expect(config.webhook.scheduleMs).toEqual([0, 1000, 120_000]);
  });

  it('names every bad variable in one error', () => {
    expect(() => loadConfig({ PORT: 'eighty', WEBHOOK_SCHEDULE: 'soon', API_KEYS: 'nocolon' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'eighty', WEBHOOK_SCHEDULE: 'soon', API_KEYS: 'nocolon' });
    } catch (err) {
      expect((err as Error).message).toMatch(/PORT/);
      expect((err as Error).message).toMatch(/WEBHOOK_SCHEDULE/);
      expect((err as Error).message).toMatch(/API_KEYS/);
    }
  });

  it('takes 0 local webhook attempts (every first attempt an activity), and refuses a negative count', () => {
    expect(loadConfig({}).webhook.localAttempts).toBe(8);
    expect(loadConfig({ WEBHOOK_LOCAL_ATTEMPTS: '0' }).webhook.localAttempts).toBe(0);
    expect(() => loadConfig({ WEBHOOK_LOCAL_ATTEMPTS: '-1' })).toThrow(/WEBHOOK_LOCAL_ATTEMPTS/);
  });

  it('requires a TLS certificate and key together', () => {
    expect(() => loadConfig({ TEMPORAL_TLS_CERT_PATH: '/c.pem' })).toThrow(
      /TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH/,
    );
  });

  it('parses durations in ms, s, m, h and d', () => {
    expect(['250', '5s', '5m', '2h', '1d', 'x'].map(parseDuration)).toEqual([
      250,
      5000,
      300_000,
      7_200_000,
      86_400_000,
      undefined,
    ]);
  });
});
