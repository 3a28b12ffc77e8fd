import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { startProcess, type RunningProcess } from '../helpers/python-env';
import { dependencyClosure, packageDiskBytes } from './install-size';

// The application's code, as docs/embedding.md shows it; the test copies it into a project outside the repo.
const CONSUMER_SRC = join(__dirname, 'consumer', 'src');
const ROOT = resolve(__dirname, '../..');
const DOCS = join(ROOT, 'docs', 'embedding.md');
const KEY = 'app:app-secret';
const MODEL = 'acme/echo';
const MB = 1024 * 1024;

const execFileAsync = promisify(execFile);

/** Runs a command to completion; a failure carries its output, which says what went wrong. */
async function run(command: string, args: string[], cwd: string, timeoutMs = 5 * 60_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * MB });
    return stdout;
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${String(err)}\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

interface PackedManifest {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
}

/**
 * The README's embedding example, run for real from the packed package: an application outside the repo
 * installs the tarball with npm, compiles its TypeScript against our type declarations, bundles its
 * workflows with ours, runs one worker with both and serves our API from its own Express app. Packing
 * (TypeScript build), installing (from the npm cache when warm) and compiling take one to three minutes
 * on a loaded 2-core machine, hence the long timeouts; the end-to-end part itself takes seconds.
 */
describe('embedding from the packed tarball: an application of its own installs, bundles and serves the queue', () => {
  let app: string;
  let manifest: PackedManifest;
  let backend: LoopbackServer;
  let receiver: LoopbackServer;
  let consumer: RunningProcess | undefined;

  beforeAll(async () => {
    const dir = mkdtempSync(join(process.env.TEST_TMP_DIR!, 'consumer-'));
    // npm pack runs `prepare` (a clean build of dist/), exactly as for `npm publish` or a git install.
    const packDir = join(dir, 'pack');
    mkdirSync(packDir);
    await run('npm', ['pack', '--pack-destination', packDir, '--silent'], ROOT, 8 * 60_000);
    const [tarball] = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const tarballPath = join(packDir, tarball!);
    manifest = JSON.parse(await run('tar', ['-xzOf', tarballPath, 'package/package.json'], dir)) as PackedManifest;

    // The application: its own package.json (our tarball, the Temporal SDK peers, Express), its sources, tsconfig.
    app = join(dir, 'app');
    mkdirSync(app);
    cpSync(CONSUMER_SRC, join(app, 'src'), { recursive: true });
    const ours = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const temporalPeers = Object.entries(manifest.peerDependencies).filter(
      ([name]) => !manifest.peerDependenciesMeta[name]?.optional,
    );
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'my-app',
        version: '1.0.0',
        private: true,
        dependencies: {
          [manifest.name]: `file:${tarballPath}`,
          ...Object.fromEntries(temporalPeers),
          express: manifest.dependencies.express,
        },
        devDependencies: {
          typescript: ours.devDependencies.typescript,
          '@types/express': ours.devDependencies['@types/express'],
          '@types/node': ours.devDependencies['@types/node'],
        },
      }),
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'Node16',
          moduleResolution: 'Node16',
          strict: true,
          esModuleInterop: true,
          // @temporalio/common's declarations import `ms` without its types, as in Temporal's own samples.
          skipLibCheck: true,
          outDir: 'dist',
          rootDir: 'src',
          types: ['node'],
        },
        include: ['src'],
      }),
    );
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 8 * 60_000);
    await run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app);

    backend = await startLoopbackServer((rec, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echoed: rec.json }));
    });
    receiver = await startLoopbackServer(respondJson(204, null));
  }, 15 * 60_000);

  afterAll(async () => {
    await consumer?.stop();
    await backend?.close();
    await receiver?.close();
  });

  it('docs/embedding.md shows exactly the code this test runs', () => {
    const docs = readFileSync(DOCS, 'utf8');
    for (const file of readdirSync(CONSUMER_SRC)) {
      const code = readFileSync(join(CONSUMER_SRC, file), 'utf8');
      expect({ file, shown: docs.includes(`\`\`\`ts\n// src/${file}\n${code}\`\`\``) }).toEqual({ file, shown: true });
    }
  });

  it('installs one copy of the Temporal SDK, none of the optional parts, and stays small', async () => {
    const workflowCopies = (await run('npm', ['ls', '@temporalio/workflow', '--all', '--parseable'], app))
      .split('\n')
      .filter((line) => line.endsWith(join('node_modules', '@temporalio', 'workflow')));
    expect(new Set(workflowCopies).size).toBe(1);
    for (const [name, meta] of Object.entries(manifest.peerDependenciesMeta)) {
      if (meta.optional) expect(() => require.resolve(name, { paths: [app] })).toThrow();
    }

    const temporalNames = Object.keys(manifest.peerDependencies).filter((n) => n.startsWith('@temporalio/'));
    const temporal = dependencyClosure(app, temporalNames);
    const all = dependencyClosure(app, [manifest.name, 'express', ...temporalNames]);
    const beyond = [...all].filter((dir) => !temporal.has(dir));
    const bytes = (dirs: Iterable<string>) => [...dirs].reduce((sum, dir) => sum + packageDiskBytes(dir), 0);
    const beyondBytes = bytes(beyond);
    console.log(
      `bare embedding install: ${(bytes(all) / MB).toFixed(1)} MB of node_modules, of which @temporalio/* and ` +
        `their dependencies ${(bytes(temporal) / MB).toFixed(1)} MB; beyond them ${(beyondBytes / MB).toFixed(1)} MB ` +
        `in ${beyond.length} packages`,
    );
    expect(beyondBytes).toBeLessThan(100 * MB);
  });

  it('exposes its four entry points, and names the package to install for a model that needs an optional part', async () => {
    const entries = await run(
      process.execPath,
      [
        '-e',
        `for (const e of ['', '/workflows', '/api', '/testing']) console.log(e || '.', Object.keys(require('${manifest.name}' + e)).length > 0);`,
      ],
      app,
    );
    expect(entries.trim().split('\n')).toEqual(['. true', '/workflows true', '/api true', '/testing true']);

    const attempt = await run(
      process.execPath,
      [
        '-e',
        `const q = require('${manifest.name}');
         try {
           q.createModelRunners(q.ModelRegistry.fromObject({ models: [{ id: 'fal-ai/esrgan', backend: { kind: 'builtin', name: 'esrgan' } }] }));
           console.log('built');
         } catch (err) { console.log(err.message); }`,
      ],
      app,
    );
    expect(attempt.trim()).toBe(
      `model fal-ai/esrgan needs @tensorflow/tfjs, @upscalerjs/esrgan-slim, jpeg-js, pngjs: npm install ` +
        ['@tensorflow/tfjs', '@upscalerjs/esrgan-slim', 'jpeg-js', 'pngjs']
          .map((n) => `${n}@${manifest.peerDependencies[n]}`)
          .join(' '),
    );
  });

  it("runs one of our requests with its webhook and one of the application's workflows, then stops cleanly", async () => {
    writeFileSync(
      join(app, 'models.json'),
      JSON.stringify({ models: [{ id: MODEL, backend: { kind: 'http', url: '${ECHO_MODEL_URL}' } }] }),
    );
    consumer = startProcess(process.execPath, [join(app, 'dist', 'main.js')], {
      cwd: app,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TEMPORAL_ADDRESS: process.env.TEST_TEMPORAL_ADDRESS,
        TEMPORAL_TASK_QUEUE: `my-app-${randomUUID()}`,
        HOST: '127.0.0.1',
        PORT: '0',
        API_KEYS: KEY,
        MODELS_FILE: join(app, 'models.json'),
        ECHO_MODEL_URL: backend.url,
        DATA_DIR: join(app, 'data'),
        EGRESS_ALLOW: '127.0.0.1/32',
        WEBHOOK_SCHEDULE: '0s,300ms',
      },
    });
    await consumer.waitFor(/"msg":"my app listening"/, 120_000);
    const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(consumer.output())![1]!;

    // Its own workflow, through its own route.
    const greeting = await fetch(`${url}/greeting/embedder`);
    expect(await greeting.json()).toEqual({ greeting: 'hello, embedder' });

    // Our request, through our API mounted in its app, with a webhook to a real receiver.
    const hook = encodeURIComponent(`${receiver.url}/hook`);
    const submitted = await fetch(`${url}/${MODEL}?fal_webhook=${hook}`, {
      method: 'POST',
      headers: { authorization: `Key ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'inside my app' }),
    });
    expect(submitted.status).toBe(200);
    const { request_id: requestId } = (await submitted.json()) as { request_id: string };
    const delivered = await receiver.nth(1, 30_000);
    expect(delivered.json).toMatchObject({
      request_id: requestId,
      status: 'OK',
      payload: { echoed: { prompt: 'inside my app' } },
    });
    const result = await fetch(`${url}/${MODEL}/requests/${requestId}`, { headers: { authorization: `Key ${KEY}` } });
    expect(await result.json()).toEqual({ echoed: { prompt: 'inside my app' } });

    // The version it reports, and the docs page that needs an optional part.
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok', version: manifest.version });
    const docs = await fetch(`${url}/docs`);
    expect(docs.status).toBe(501);
    expect(await docs.text()).toContain(`npm install swagger-ui-dist@${manifest.peerDependencies['swagger-ui-dist']}`);

    // The application's own SIGTERM handler drains and exits by itself.
    const exited = once(consumer.child, 'exit');
    consumer.child.kill('SIGTERM');
    await exited;
    expect(consumer.child.exitCode).toBe(0);
    expect(consumer.output()).toContain('"msg":"my app stopped"');
  }, 180_000);
});
