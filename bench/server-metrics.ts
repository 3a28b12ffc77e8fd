/**
 * What one request costs the Temporal server, by operation, from the server's own Prometheus counters (the dev server
 * the bench starts serves them with `--metrics-port`). Counting the work is steadier than timing it: the two systems'
 * database writes can be compared one by one, which is how our extra visibility write per request showed up.
 */
import { round } from './stats';

/** The counters read: database calls of the main store and of visibility, by `operation`. */
const COUNTERS = {
  persistence_requests: 'db',
  visibility_persistence_requests: 'visibility',
} as const;

/** Counter totals by `<store> <operation>`, summed over the other labels (service, namespace, ...). */
export type ServerOps = Record<string, number>;

/** Parses the counters of interest out of a Prometheus text exposition. */
export function parseServerOps(text: string): ServerOps {
  const ops: ServerOps = {};
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const [, name = '', labels = '', value = '0'] = match;
    const store = COUNTERS[name as keyof typeof COUNTERS];
    if (!store) continue;
    const operation = /(?:^|,)operation="([^"]*)"/.exec(labels)?.[1] ?? '?';
    const key = `${store} ${operation}`;
    ops[key] = (ops[key] ?? 0) + Number(value);
  }
  return ops;
}

/** Reads the counters now; undefined when the server has no metrics listener or does not answer. */
export async function readServerOps(metricsUrl: string | undefined): Promise<ServerOps | undefined> {
  if (!metricsUrl) return undefined;
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? parseServerOps(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Calls per request between two readings, for operations that happened at least `min` times per request. The server
 * exports its counters about once a second, and its background work (timers firing later, its own system workflows)
 * lands in whichever window it falls in, so small fractions are noise.
 */
export function opsPerRequest(
  before: ServerOps | undefined,
  after: ServerOps | undefined,
  requests: number,
  min = 0.05,
): ServerOps | undefined {
  if (!before || !after || requests === 0) return undefined;
  const out: ServerOps = {};
  for (const [key, total] of Object.entries(after)) {
    const perRequest = (total - (before[key] ?? 0)) / requests;
    if (perRequest >= min) out[key] = round(perRequest, 2);
  }
  return out;
}
