import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { parse } from 'yaml';
import { apiRoutes } from '../../src/api/api-routes';
import { EnvSchema, loadConfig } from '../../src/config';
import { REQUEST_SEARCH_ATTRIBUTES } from '../../src/observability/search-attributes';
import { clusterSetupEnv, TEMPORAL_SERVER_VERSION } from '../../src/cluster/temporal-server';
import { ClusterRole, clusterServiceEnv } from '../../src/cluster/services';
import { CLUSTER_STORE_ENV, clusterStoreSettings, seaweedFsStoreEnv } from '../../src/cluster/store';

const root = resolve(__dirname, '../..');
const setupScript = join(root, 'scripts', 'cluster', 'setup.sh');
const run = promisify(execFile);

interface Service {
  build?: string;
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const ours = Object.entries(services).filter(([, s]) => s.build === '.');

/** What compose does to `${VAR:-default}` with `shell` as the caller's environment (default: nothing set), and to `$$`. */
const interpolate = (value: string | number, shell: Record<string, string> = {}) =>
  String(value)
    .replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_, name: string, fallback?: string) => shell[name] || (fallback ?? ''))
    .replace(/\$\$/g, '$');
const envOf = (service: Service, shell: Record<string, string> = {}) =>
  Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v, shell)]));
/** `127.0.0.1:8080:8080` → the container port. */
const containerPorts = (service: Service) => (service.ports ?? []).map((p) => Number(p.split(':').at(-1)));
/** Variables the models file reads with `${VAR}`. */
const modelsFileVars = [...readFileSync(join(root, 'models.json'), 'utf8').matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]);
const modelIds = (
  JSON.parse(readFileSync(join(root, 'models.json'), 'utf8')) as { models: { id: string }[] }
).models.map((m) => m.id);
/** `dist/x/y.js` → `src/x/y.ts`, the file the image compiles it from. */
const sourceOf = (distFile: string) => join(root, distFile.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts'));

describe('docker-compose.yml and Dockerfile agree with the code', () => {
  it('has the services of the production shape, started in order', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'api',
        'model-runner',
        'postgresql',
        'seaweedfs',
        'temporal',
        'temporal-schema',
        'temporal-setup',
        'temporal-ui',
        'worker',
      ].sort(),
    );
    expect(services['temporal-schema']!.depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
    expect(services.temporal!.depends_on).toEqual({
      'temporal-schema': { condition: 'service_completed_successfully' },
    });
    expect(services['temporal-setup']!.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(services['temporal-ui']!.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(ours.map(([name]) => name).sort()).toEqual(['api', 'model-runner', 'worker']);
    for (const [, service] of ours) {
      expect(service.depends_on).toEqual({
        'temporal-setup': { condition: 'service_completed_successfully' },
        seaweedfs: { condition: 'service_healthy' },
      });
    }
    for (const name of ['postgresql', 'seaweedfs', 'temporal', 'api', 'worker', 'model-runner']) {
      expect({ name, healthcheck: Boolean(services[name]!.healthcheck) }).toEqual({ name, healthcheck: true });
    }
  });

  it.each(ours)('%s: every variable is one we read, and together they are a valid configuration', (_name, service) => {
    const known = new Set([...Object.keys(EnvSchema.shape), ...modelsFileVars]);
    const env = envOf(service);
    expect(Object.keys(env).filter((key) => !known.has(key))).toEqual([]);
    const config = loadConfig(env, '/app');
    expect(config.dataDir).toBe('/data');
    // DATA_DIR is the shared volume.
    expect(service.volumes).toContain(`files:${env.DATA_DIR}`);
    // The Temporal address names the Temporal service, on its gRPC port.
    const [host, port] = env.TEMPORAL_ADDRESS!.split(':');
    expect(services[host!]?.ports?.map((p) => p.split(':').at(-1))).toContain(port);
    if (env.WORKER_MODELS && env.WORKER_MODELS !== '*') {
      for (const id of env.WORKER_MODELS.split(',')) expect(modelIds).toContain(id.trim());
    }
  });

  it.each(ours)('%s: runs a compiled entry point of ours and probes a port and path it serves', (name, service) => {
    const [node, entry] = service.command ?? [];
    expect(node).toBe('node');
    expect(existsSync(sourceOf(entry!))).toBe(true);
    const env = envOf(service);
    const servedPort = entry === 'dist/server.js' ? Number(env.PORT) : Number(env.METRICS_PORT);
    expect({ name, ports: containerPorts(service) }).toEqual({ name, ports: [servedPort] });

    const [, probeNode, probe, url] = service.healthcheck!.test;
    expect([probeNode, existsSync(sourceOf(probe!))]).toEqual(['node', true]);
    const probed = new URL(url!);
    expect(Number(probed.port)).toBe(servedPort);
    if (entry === 'dist/server.js') {
      expect(apiRoutes.map((r) => r.route)).toContain(probed.pathname);
    } else {
      // The worker's metrics server (src/observability/metrics-server.ts).
      expect(['/healthz', '/metrics']).toContain(probed.pathname);
    }
  });

  it('runs the Temporal server and admin tools at the version `npm run cluster` builds, with its setup script', () => {
    const version = TEMPORAL_SERVER_VERSION.replace(/^v/, '');
    expect(interpolate(services.temporal!.image!)).toBe(`temporalio/server:${version}`);
    for (const name of ['temporal-schema', 'temporal-setup']) {
      const service = services[name]!;
      expect(interpolate(service.image!)).toBe(`temporalio/admin-tools:${version}`);
      expect(service.volumes).toContain('./scripts/cluster/setup.sh:/etc/temporal/setup.sh:ro');
      expect(service.entrypoint).toEqual(['sh', '/etc/temporal/setup.sh']);
    }
    expect(services['temporal-schema']!.command).toEqual(['schema']);
    expect(services['temporal-setup']!.command).toEqual(['namespace']);
    // The same dynamic config as the script's server.
    const dynamicConfig = envOf(services.temporal!).DYNAMIC_CONFIG_FILE_PATH;
    expect(services.temporal!.volumes).toContain(`./scripts/cluster/dynamicconfig.yaml:${dynamicConfig}:ro`);
    expect(envOf(services.temporal!)).toMatchObject({ DB: 'postgres12', NUM_HISTORY_SHARDS: '4' });
  });

  it('gives the setup script and our processes the variable names `npm run cluster` gives them', () => {
    const script = readFileSync(setupScript, 'utf8');
    const scriptReads = new Set([...script.matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
    const scriptEnv = clusterSetupEnv({
      projectRoot: root,
      binaries: { server: 'server', sql: 'sql', moduleDir: '/m' },
      cliPath: 'temporal',
      postgres: { port: 5432, user: 'temporal', password: 'temporal' },
      address: 'temporal:7233',
      namespace: 'default',
    });
    for (const name of ['temporal-schema', 'temporal-setup']) {
      const unread = Object.keys(envOf(services[name]!)).filter((k) => !scriptReads.has(k));
      expect({ name, unread }).toEqual({ name, unread: [] });
    }
    expect(Object.keys(scriptEnv).filter((k) => !scriptReads.has(k))).toEqual([]);
    // The server reads the database settings under the same names the script does.
    for (const key of Object.keys(envOf(services['temporal-schema']!))) {
      expect(envOf(services.temporal!)[key]).toBe(envOf(services['temporal-schema']!)[key]);
    }

    const roles = { api: ClusterRole.Api, worker: ClusterRole.Worker, 'model-runner': ClusterRole.ModelRunner };
    for (const [name, service] of ours) {
      const env = envOf(service);
      const fromScript = clusterServiceEnv(roles[name as keyof typeof roles], {
        address: 'temporal:7233',
        dataDir: '/data',
        apiPort: 8080,
        metricsPort: env.METRICS_PORT === undefined ? undefined : Number(env.METRICS_PORT),
        env: {},
        projectRoot: root,
        store: seaweedFsStoreEnv(clusterStoreSettings({}), 'http://seaweedfs:8333', {
          accessKeyId: 'k',
          secretAccessKey: 's',
        }),
      });
      expect({ name, names: Object.keys(fromScript).sort() }).toEqual({ name, names: Object.keys(env).sort() });
      for (const key of ['TEMPORAL_NAMESPACE', 'TEMPORAL_TASK_QUEUE', 'API_KEYS', 'WORKER_CONTROL', 'WORKER_MODELS']) {
        expect({ name, key, value: fromScript[key] }).toEqual({ name, key, value: env[key] });
      }
    }
  });

  it('runs the object store as `npm run cluster` does, from the same variables, and points every service at it', () => {
    // The caller's settings, under the names both the compose file and the script read.
    const shell = {
      S3_BUCKET: 'media',
      S3_ACCESS_KEY_ID: 'operator-key',
      S3_SECRET_ACCESS_KEY: 'operator-secret',
      S3_PUBLIC_ENDPOINT: 'https://store.example.com',
    };
    const weed = services.seaweedfs!;
    const weedEnv = envOf(weed, shell);
    const flags = Object.fromEntries(
      (weed.command ?? []).slice(1).map((arg) => {
        const [flag, value] = arg.replace(/^-/, '').split('=');
        return [flag!, interpolate(value ?? '', shell)];
      }),
    );
    expect(weed.command![0]).toBe('mini');
    expect(weed.volumes).toContain('seaweedfs-data:/data');
    expect(flags.dir).toBe('/data');
    expect(containerPorts(weed)).toEqual([Number(flags['s3.port'])]);
    expect(weed.healthcheck!.test.join(' ')).toContain(`:${flags['s3.port']}/healthz`);

    const settings = clusterStoreSettings(shell);
    expect(settings.keys).toEqual({ accessKeyId: 'operator-key', secretAccessKey: 'operator-secret' });
    // The store's keys turn authentication on; the services sign with the same pair.
    expect(weedEnv).toEqual({
      AWS_ACCESS_KEY_ID: settings.keys!.accessKeyId,
      AWS_SECRET_ACCESS_KEY: settings.keys!.secretAccessKey,
    });
    expect(flags.bucket).toBe(settings.bucket);
    const fromScript = seaweedFsStoreEnv(settings, `http://seaweedfs:${flags['s3.port']}`, settings.keys!);
    for (const [name, service] of ours) {
      const env = envOf(service, shell);
      const storeEnv = Object.fromEntries(CLUSTER_STORE_ENV.map((key) => [key, env[key]]));
      expect({ name, storeEnv }).toEqual({ name, storeEnv: fromScript });
      expect(loadConfig(env, '/app').storage).toMatchObject({
        kind: 's3',
        bucket: 'media',
        prefix: 'queue',
        endpoint: 'http://seaweedfs:8333',
        publicEndpoint: 'https://store.example.com',
      });
    }
  });

  it('registers exactly our search attributes, with the shared setup script against a real server (twice)', async () => {
    const script = readFileSync(setupScript, 'utf8');
    expect(script).toContain(`for name in ${REQUEST_SEARCH_ATTRIBUTES.map((k) => k.name).join(' ')}; do`);
    expect(REQUEST_SEARCH_ATTRIBUTES.every((k) => k.type === 'KEYWORD')).toBe(true);
    expect(script).toContain('--type Keyword');

    const namespace = `compose-${randomUUID().slice(0, 8)}`;
    const address = process.env.TEST_TEMPORAL_ADDRESS!;
    const connection = await Connection.connect({ address });
    try {
      const env = {
        ...process.env,
        ...envOf(services['temporal-setup']!),
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: namespace,
        TEMPORAL_CLI: process.env.TEST_TEMPORAL_CLI!,
      };
      // The script creates the namespace itself, then waits until a start with the attributes works.
      for (let i = 0; i < 2; i++) await run('sh', [setupScript, 'namespace'], { env });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      for (const key of REQUEST_SEARCH_ATTRIBUTES) expect(Object.keys(customAttributes ?? {})).toContain(key.name);
      // The readiness probe leaves nothing behind for operators' queries.
      const { executions } = await connection.workflowService.listWorkflowExecutions({ namespace, query: '' });
      expect(executions ?? []).toEqual([]);
    } finally {
      await connection.close();
    }
  });

  it('builds an image whose settings, entry points and ports match the compose file', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    // Instructions with their `\` continuations joined.
    const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n');
    const envBlock = instructions.filter((line) => line.startsWith('ENV ')).join(' ');
    const env = Object.fromEntries([...envBlock.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    expect(Object.keys(env).filter((k) => k !== 'NODE_ENV' && !(k in EnvSchema.shape))).toEqual([]);
    // The bundle the build writes is the one workers load.
    expect(env.WORKFLOW_BUNDLE_PATH).toBe('/app/dist/workflow-bundle.js');
    expect(readFileSync(join(root, 'scripts/bundle-workflows.ts'), 'utf8')).toContain("'workflow-bundle.js'");
    expect(env.MODELS_FILE).toBe('/app/models.json');
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY package\.json models\.json \.\/$/m);
    for (const [, service] of ours) expect(envOf(service).MODELS_FILE).toBe(env.MODELS_FILE);

    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(existsSync(sourceOf(cmd[1]!))).toBe(true);
    const exposed = /^EXPOSE (.+)$/m.exec(dockerfile)![1]!.split(/\s+/).map(Number).sort();
    const served = [...new Set(ours.flatMap(([, s]) => containerPorts(s)))].sort();
    expect(exposed).toEqual(served);
  });

  it('passes `docker-compose config` (the file is valid Compose)', () => {
    const binary = ['docker-compose'].find((b) => {
      try {
        execFileSync(b, ['version'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    if (!binary) {
      // .ci/run installs it (Debian package `docker-compose`) and sets REQUIRE_DOCKER_COMPOSE, so CI never skips this.
      if (process.env.REQUIRE_DOCKER_COMPOSE || process.env.CI === 'true') {
        throw new Error('docker-compose is not installed: apt-get install docker-compose (see .ci/run)');
      }
      console.warn('docker-compose is not installed: skipping `docker-compose config` (CI runs it)');
      return;
    }
    execFileSync(binary, ['-f', join(root, 'docker-compose.yml'), 'config', '--quiet'], { cwd: root, stdio: 'pipe' });
    const listed = execFileSync(binary, ['-f', join(root, 'docker-compose.yml'), 'config', '--services'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(listed.trim().split('\n').sort()).toEqual(Object.keys(services).sort());
  });
});
