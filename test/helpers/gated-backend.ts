import { startLoopbackServer, type LoopbackServer } from './http-peers';

export interface GatedBackend extends LoopbackServer {
  /** Answers the oldest held request with this JSON output. */
  release(output?: unknown): void;
  /** Bodies of requests whose caller went away before they were answered. */
  aborted: unknown[];
}

/**
 * A model backend that holds every request until the test releases it, so a test controls exactly
 * when a run is in progress, and that notices when the caller gives up on it (cancellation).
 */
export async function startGatedBackend(): Promise<GatedBackend> {
  const held: ((output: unknown) => void)[] = [];
  const aborted: unknown[] = [];
  const server = await startLoopbackServer(
    (rec, raw, res) =>
      new Promise<void>((resolve) => {
        res.on('close', () => {
          if (!res.writableFinished) aborted.push(rec.json);
          resolve();
        });
        held.push((output) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(output));
        });
        raw.resume();
      }),
  );
  return Object.assign(server, {
    aborted,
    release(output: unknown = { ok: true }) {
      const next = held.shift();
      if (!next) throw new Error('no request is being held');
      next(output);
    },
  });
}
