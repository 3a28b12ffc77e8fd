import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A bench run's temporary directory, and what to stop when the run is over. */
export interface RunScope {
  dir: string;
  /** Stops, in reverse order of registration (last started, first stopped). */
  cleanups: (() => Promise<unknown>)[];
  /** Runs the cleanups once, whether the run ends, fails or is interrupted; removes `dir` unless kept. */
  cleanup(): Promise<void>;
}

/** Creates the run's directory and stops everything on SIGINT / SIGTERM (exit code 130). */
export function startRunScope(prefix: string, { keep, log }: { keep: boolean; log: (line: string) => void }): RunScope {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cleanups: (() => Promise<unknown>)[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
      if (!keep) rmSync(dir, { recursive: true, force: true });
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the stack`);
      void cleanup().then(() => process.exit(130));
    });
  }
  return { dir, cleanups, cleanup };
}
