import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { parse } from 'yaml';
import { apiRoutes } from '../../src/api/api-routes';
import { EnvSchema, loadConfig } from '../../src/config';
import { REQUEST_SEARCH_ATTRIBUTES } from '../../src/observability/search-attributes';
import { eventually } from '../helpers/stack';

const root = resolve(__dirname, '../..');
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

/** What compose does to `${VAR:-default}` with nothing set, and to `$$`. */
const interpolate = (value: string | number) =>
  String(value)
    .replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_, _name: string, fallback?: string) => fallback ?? '')
    .replace(/\$\$/g, '$');
const envOf = (service: Service) =>
  Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));
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
      ['api', 'model-runner', 'postgresql', 'temporal', 'temporal-setup', 'temporal-ui', 'worker'].sort(),
    );
    expect(services.temporal!.depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
    expect(services['temporal-setup']!.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(services['temporal-ui']!.depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(ours.map(([name]) => name).sort()).toEqual(['api', 'model-runner', 'worker']);
    for (const [, service] of ours) {
      expect(service.depends_on).toEqual({ 'temporal-setup': { condition: 'service_completed_successfully' } });
    }
    for (const name of ['postgresql', 'temporal', 'api', 'worker', 'model-runner']) {
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

  it('registers exactly our search attributes, with commands that work against a real server (twice)', async () => {
    const setup = services['temporal-setup']!;
    const script = interpolate(setup.command!.join('\n'));
    expect(script).toContain(`for name in ${REQUEST_SEARCH_ATTRIBUTES.map((k) => k.name).join(' ')}; do`);
    expect(REQUEST_SEARCH_ATTRIBUTES.every((k) => k.type === 'KEYWORD')).toBe(true);
    expect(script).toContain('--type Keyword');

    const namespace = `compose-${randomUUID().slice(0, 8)}`;
    const address = process.env.TEST_TEMPORAL_ADDRESS!;
    const connection = await Connection.connect({ address });
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs('1 day'),
      });
      await eventually(() => connection.workflowService.describeNamespace({ namespace }).catch(() => undefined));
      const env = {
        ...process.env,
        ...envOf(setup),
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: namespace,
        PATH: `${dirname(process.env.TEST_TEMPORAL_CLI!)}:${process.env.PATH}`,
      };
      for (let i = 0; i < 2; i++) await run(setup.entrypoint![0]!, [...setup.entrypoint!.slice(1), script], { env });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      for (const key of REQUEST_SEARCH_ATTRIBUTES) expect(Object.keys(customAttributes ?? {})).toContain(key.name);
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
