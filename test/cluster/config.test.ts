import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { TEMPORAL_SERVER_VERSION, temporalPorts, temporalServerConfig } from '../../src/cluster/temporal-server';
import { TUNED_DYNAMIC_CONFIG } from '../../src/temporal/dev-server';

const root = resolve(__dirname, '..', '..');
const dynamicConfigFile = join(root, 'scripts', 'cluster', 'dynamicconfig.yaml');

describe('the cluster’s server settings', () => {
  it('tunes the cluster’s server as the dev server we launch', () => {
    const file = parse(readFileSync(dynamicConfigFile, 'utf8')) as Record<string, { value: unknown }[]>;
    const values = Object.fromEntries(Object.entries(file).map(([key, [entry]]) => [key, entry!.value]));
    expect(values).toEqual(TUNED_DYNAMIC_CONFIG);
  });

  it('adapts development-postgres12.yaml: loopback only, 4 shards, SQL visibility, no archival, absolute paths', async () => {
    // The suite's global setup built the server, so its module source is in Go's module cache.
    const output = execFileSync(
      'go',
      ['mod', 'download', '-json', `go.temporal.io/server@${TEMPORAL_SERVER_VERSION}`],
      {
        cwd: '/',
        encoding: 'utf8',
      },
    );
    const moduleDir = (JSON.parse(output) as { Dir: string }).Dir;
    const ports = temporalPorts(21_233);
    const config = parse(
      await temporalServerConfig({
        moduleDir,
        ports,
        postgres: { port: 15_432, user: 'temporal', password: 'secret' },
        dynamicConfigFile,
      }),
    );
    expect(config.persistence.numHistoryShards).toBe(4);
    expect(config.persistence.visibilityStore).toBe('postgres-visibility');
    for (const store of Object.values(config.persistence.datastores) as { sql: Record<string, unknown> }[]) {
      expect(store.sql).toMatchObject({ pluginName: 'postgres12', connectAddr: '127.0.0.1:15432', password: 'secret' });
    }
    for (const service of Object.values(config.services) as { rpc: Record<string, unknown> }[]) {
      expect(service.rpc.bindOnIP).toBe('127.0.0.1');
      // cluster_membership.rpc_port is a smallint.
      expect(service.rpc.membershipPort as number).toBeLessThan(32_768);
    }
    expect(config.services.frontend.rpc.grpcPort).toBe(21_233);
    expect(config.global.membership.broadcastAddress).toBe('127.0.0.1');
    expect(config.archival).toBeUndefined();
    expect(config.namespaceDefaults).toBeUndefined();
    expect(config.global.pprof).toBeUndefined();
    expect(config.dynamicConfigClient.filepath).toBe(dynamicConfigFile);
  });
});
