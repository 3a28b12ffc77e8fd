import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { acquireInstallLock, runCommand } from '../../src/tools/cached-install';
import type { Stack } from './stack';

/** The project root; venvs for tests live under its git-ignored `.venv/`. */
export const PROJECT_ROOT = resolve(__dirname, '../..');

export interface PythonEnv {
  /** The venv's interpreter. */
  python: string;
  /** The venv's `bin` directory (put it first on PATH for tools that run `python` by name). */
  binDir: string;
}

export interface EnsurePythonEnvOptions {
  /** The venv directory, e.g. `<root>/.venv/cog`. */
  dir: string;
  /** Exact pip requirements (`name==version`); the venv is rebuilt when they change. */
  packages: string[];
  /** Oldest Python the packages support. @default [3, 10] */
  minPython?: [number, number];
  /** Bound on the whole install. @default 10 minutes */
  timeoutMs?: number;
  log?: (line: string) => void;
}

const LOCK_WAIT_MS = 15 * 60_000;
const MARKER = '.installed-requirements.json';

/**
 * A project-local venv holding exactly `packages`, installed from PyPI on first use and reused after
 * (a marker file records what was installed). Concurrent jest workers wait on a lock file next to the
 * venv instead of installing over each other; a lock whose process died is taken over.
 */
export async function ensurePythonEnv(options: EnsurePythonEnvOptions): Promise<PythonEnv> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const env: PythonEnv = { python: join(options.dir, 'bin', 'python'), binDir: join(options.dir, 'bin') };
  const wanted = JSON.stringify([...options.packages].sort());
  if (await installed(options.dir, wanted)) return env;

  await mkdir(dirname(options.dir), { recursive: true });
  const release = await acquireInstallLock(`${options.dir}.lock`, {
    task: `installing into ${options.dir}`,
    waitMs: LOCK_WAIT_MS,
    pollMs: 500,
    log,
    timeoutError: (message) => new Error(message),
  });
  try {
    if (await installed(options.dir, wanted)) return env;
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
    const base = await findPython(options.minPython ?? [3, 10]);
    log(`Creating ${options.dir} with ${base} and installing ${options.packages.join(' ')} ...`);
    await rm(options.dir, { recursive: true, force: true });
    await run(base, ['-m', 'venv', options.dir], deadline, log);
    await run(
      env.python,
      ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--timeout', '60', ...options.packages],
      deadline,
      log,
    );
    await writeFile(join(options.dir, MARKER), wanted);
    return env;
  } finally {
    await release();
  }
}

async function installed(dir: string, wanted: string): Promise<boolean> {
  try {
    await access(join(dir, 'bin', 'python'), constants.X_OK);
    return (await readFile(join(dir, MARKER), 'utf8')) === wanted;
  } catch {
    return false;
  }
}

/** Finds an interpreter on PATH at least `min` (the venv module comes with it, or the error says so). */
async function findPython(min: [number, number]): Promise<string> {
  const names = ['python3', ...Array.from({ length: 6 }, (_, i) => `python3.${min[1] + i}`), 'python'];
  for (const name of names) {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (!dir) continue;
      const candidate = join(dir, name);
      const check = `import sys; sys.exit(0 if sys.version_info >= (${min[0]}, ${min[1]}) else 1)`;
      const ok = await run(candidate, ['-c', check], Date.now() + 30_000, () => undefined)
        .then(() => true)
        .catch(() => false);
      if (ok) return candidate;
    }
  }
  throw new Error(`no Python ${min.join('.')}+ on PATH: install one (with its venv module) to run this test`);
}

/** Runs a command to completion before `deadline`, forwarding its output; rejects with its tail on failure. */
async function run(command: string, args: string[], deadline: number, log: (line: string) => void): Promise<void> {
  const signal = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
  await runCommand(command, args, { env: process.env, log, prefix: '  ', signal });
}

/** A long-running child process whose output a test can wait on. */
export interface RunningProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves once the output matches; rejects if the process exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM to its process group, then SIGKILL if it is still there after 5 s. */
  stop(): Promise<void>;
}

/** Starts a process in its own process group (so stopping it stops what it spawned too). */
export function startProcess(
  command: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): RunningProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: 'pipe', detached: true });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    listeners.forEach((l) => l());
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  return {
    child,
    output: () => out,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolveWait, reject) => {
        const check = () => {
          if (!pattern.test(out)) return;
          cleanup();
          resolveWait();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${pattern} in ${timeoutMs} ms; output:\n${out}`));
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(new Error(`${command} exited (${child.exitCode}) before printing ${pattern}:\n${out}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off('exit', onExit);
        };
        listeners.add(check);
        child.once('exit', onExit);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        signalGroup('SIGKILL');
        return;
      }
      signalGroup('SIGTERM');
      const killer = setTimeout(() => signalGroup('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
      signalGroup('SIGKILL');
    },
  };
}

/**
 * Starts an external Python model runner (a Temporal worker on the model's task queue) against `stack` and resolves
 * once it polls, so the first request a test submits is picked up rather than queued behind a starting process.
 * `env` is the base environment; the Temporal address, task queue and model id are added from `stack`.
 */
export async function startPythonRunner(
  stack: Stack,
  modelId: string,
  command: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv },
): Promise<RunningProcess> {
  const runner = startProcess(command, args, {
    cwd: options.cwd,
    env: {
      ...options.env,
      TEMPORAL_ADDRESS: stack.config.temporal.address!,
      TEMPORAL_TASK_QUEUE: stack.config.temporal.taskQueue,
      MODEL_ID: modelId,
      // No .pyc files in the example's tree, and log lines as they are written (the tests wait on them).
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONUNBUFFERED: '1',
    },
  });
  try {
    await runner.waitFor(/runner polling/, 60_000);
  } catch (err) {
    await runner.stop();
    throw err;
  }
  return runner;
}

/** A TCP port that was free a moment ago, for servers that cannot be told to pick one themselves. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
