// `npm start` / `npm test` on a fresh clone: install what is missing, then hand over.
// Plain Node with built-ins only, because it runs before any dependency is installed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [mode, ...args] = process.argv.slice(2);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function installIfMissing() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
  if (!stale) return;
  console.log('> installing npm dependencies (first run)');
  const result = spawnSync(npm, [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Runs a command, forwarding Ctrl-C / SIGTERM to it, and resolves with its exit code. */
function run(command, commandArgs, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { cwd: root, stdio: 'inherit', env });
    const forward = (signal) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

const tsx = ['--import', 'tsx'];
/** `npm run bench -- <flag>` runs a benchmark of its own instead of bench/bench.ts. */
const BENCH_SCRIPTS = {
  // 1 vs 2 model runner processes on the cluster topology.
  '--scale-out': 'bench/scale-out.ts',
  // The API's HTTP layer alone against a bare Node HTTP server.
  '--api-overhead': 'bench/api-overhead.ts',
};
const benchFlag = mode === 'bench' ? args.find((a) => Object.hasOwn(BENCH_SCRIPTS, a)) : undefined;

installIfMissing();
if (mode === 'start') {
  process.exitCode = await run(process.execPath, [...tsx, 'src/dev.ts', ...args]);
} else if (mode === 'test') {
  // Static checks first: they are quick and a type error would fail the suite less clearly.
  const steps = [
    ['typecheck', [npm, ['run', '--silent', 'typecheck']]],
    ['lint', [npm, ['run', '--silent', 'lint']]],
    ['jest', [process.execPath, [join(root, 'node_modules', 'jest', 'bin', 'jest.js'), ...args]]],
  ];
  const failed = [];
  for (const [name, [command, commandArgs]] of steps) {
    console.log(`> ${name}`);
    if ((await run(command, commandArgs)) !== 0) failed.push(name);
  }
  if (failed.length > 0) console.error(`failed: ${failed.join(', ')}`);
  process.exitCode = failed.length > 0 ? 1 : 0;
} else if (mode === 'cluster') {
  process.exitCode = await run(process.execPath, [...tsx, 'src/cluster/main.ts', ...args]);
} else if (mode === 'test:cluster') {
  // The cluster suite (test/cluster): its own jest config, one cluster for the run, one file at a time.
  const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
  process.exitCode = await run(process.execPath, [jest, '-c', 'jest.cluster.config.js', ...args]);
} else if (benchFlag) {
  const rest = args.filter((a) => a !== benchFlag);
  process.exitCode = await run(process.execPath, [...tsx, BENCH_SCRIPTS[benchFlag], ...rest]);
} else if (mode === 'bench' || mode === 'chaos') {
  process.exitCode = await run(process.execPath, [...tsx, `bench/${mode}.ts`, ...args]);
} else {
  console.error('usage: node scripts/bootstrap.mjs start|test|test:cluster|cluster|bench|chaos [args...]');
  process.exitCode = 2;
}
