/**
 * Child processes of the cluster topology and of the bench: started in the foreground, watched for a
 * readiness line, killed with us when we exit, stoppable gracefully or with kill -9.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

/** A service running in its own process. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the line that announced readiness; rejects if the process exits first. */
  ready: Promise<string>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<string>;
  /** The last lines the process wrote, for error messages. */
  output(): string;
  /** kill -9. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** `signal` (SIGTERM: graceful drain), SIGKILL after `graceMs`. Resolves once the process is gone. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
}

/** What {@link spawnService} starts. */
export interface SpawnServiceOptions {
  name: string;
  command: string;
  args: string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** A line containing this text means the service is ready; omitted = ready once started (the caller probes). */
  readyText?: string;
  /** Run as this user and group (we are root, the service refuses to be). */
  uid?: number;
  gid?: number;
  /** Receives every output line, prefixed with `[name] `. */
  log?: (line: string) => void;
  /** Appends every output line to this file too (created with its directory). */
  logFile?: string;
}

const OUTPUT_TAIL_LINES = 40;
const running = new Set<ChildProcess>();

/**
 * Starts `command` and watches its output for `readyText`. The child is SIGKILLed if this process exits first, so an
 * interrupted run leaves nothing behind.
 */
export function spawnService(options: SpawnServiceOptions): ServiceProcess {
  const { name } = options;
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid,
  });
  if (running.size === 0) process.on('exit', killAll);
  running.add(child);
  let file: WriteStream | undefined;
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    file = createWriteStream(options.logFile, { flags: 'a' });
  }
  const tail: string[] = [];
  const exited = new Promise<string>((done) => {
    child.once('error', (err) => {
      tail.push(`could not start ${options.command}: ${err.message}`);
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      if (running.size === 0) process.off('exit', killAll);
      file?.end();
      done(signal ?? String(code));
    });
  });
  const ready = new Promise<string>((resolveReady, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        tail.push(line);
        if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
        file?.write(`${line}\n`);
        options.log?.(`[${name}] ${line}`);
        if (options.readyText !== undefined && line.includes(options.readyText)) resolveReady(line);
      });
    }
    if (options.readyText === undefined) child.once('spawn', () => resolveReady('started'));
    void exited.then((how) => reject(new Error(`${name} exited (${how}) before it was ready:\n${tail.join('\n')}`)));
  });
  // A service that dies later is the caller's business (chaos expects it); only the wait above cares here.
  ready.catch(() => undefined);
  const signal = async (sig: NodeJS.Signals, graceMs: number) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
  };
  return {
    name,
    child,
    pid: child.pid ?? -1,
    ready,
    exited,
    output: () => tail.join('\n'),
    kill: () => signal('SIGKILL', 0),
    stop: (graceMs = 15_000, sig: NodeJS.Signals = 'SIGTERM') => signal(sig, graceMs),
  };
}

function killAll(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Runs a command to completion; rejects with its output's tail when it fails. Resolves with stdout. */
export function runCommand(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; uid?: number; gid?: number; log?: (line: string) => void },
): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
    const stdout: string[] = [];
    const tail: string[] = [];
    for (const [stream, isStdout] of [
      [child.stdout, true],
      [child.stderr, false],
    ] as const) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (isStdout) stdout.push(line);
        tail.push(line);
        if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
        options.log?.(line);
      });
    }
    child.once('error', (err) => reject(new Error(`could not run ${command}: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolveRun(stdout.join('\n'));
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `code ${code}`}):\n${tail.join('\n')}`));
    });
  });
}
