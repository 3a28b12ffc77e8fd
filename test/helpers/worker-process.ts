import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker logged that it is polling. */
  ready: Promise<void>;
  exited: Promise<number | null>;
  output(): string;
}

const root = resolve(__dirname, '../..');

/**
 * Starts `src/worker.ts` as its own process, exactly as a deployment would (configured only by its
 * environment), so a test can kill -9 it.
 */
export function spawnWorker(env: Record<string, string>, models: unknown, dir: string): WorkerProcess {
  const modelsFile = join(dir, `models-${process.pid}-${Date.now()}.json`);
  writeFileSync(modelsFile, JSON.stringify(models));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    cwd: root,
    env: { ...process.env, ...env, MODELS_FILE: modelsFile, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<void>((resolveReady, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('workers polling')) resolveReady();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready:\n${out}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, ready, exited, output: () => out };
}
