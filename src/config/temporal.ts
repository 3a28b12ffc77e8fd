import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from './config-error';
import type { Env } from './env';

/** How this process reaches Temporal, and the dev server it may start. */
export interface TemporalConfig {
  /** Unset means "start the embedded dev server" in the dev launcher, and 127.0.0.1:7233 elsewhere. */
  address?: string;
  namespace: string;
  apiKey?: string;
  tls?: { certPath?: string; keyPath?: string; caPath?: string; serverName?: string };
  taskQueue: string;
  devServerPort: number;
  devServerUiPort: number;
  /** Whether requests carry the search attributes of `src/observability/search-attributes.ts` (they must be registered). */
  searchAttributes: boolean;
  /**
   * Whether an API that shares its process and connection with a control worker (`npm start`, `startServer`'s
   * `workerConnection`) asks for eager workflow starts (docs/performance.md: less server work per request, a worse
   * tail under load).
   */
  eagerStart: boolean;
}

/**
 * The `temporal` part of the config. TLS settings are checked as a whole here, because zod sees one variable at a
 * time: a certificate without its key, or a server name with no TLS to apply it to, is a mistake worth stopping on.
 */
export function temporalConfig(e: Env, cwd: string): TemporalConfig {
  const tlsGiven = e.TEMPORAL_TLS_CERT_PATH || e.TEMPORAL_TLS_KEY_PATH || e.TEMPORAL_TLS_CA_PATH;
  if (Boolean(e.TEMPORAL_TLS_CERT_PATH) !== Boolean(e.TEMPORAL_TLS_KEY_PATH)) {
    throw new ConfigError('Invalid configuration:\n  TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH go together');
  }
  if (e.TEMPORAL_TLS_SERVER_NAME && !tlsGiven && !e.TEMPORAL_API_KEY) {
    throw new ConfigError(
      'Invalid configuration:\n  TEMPORAL_TLS_SERVER_NAME only applies over TLS: set TEMPORAL_TLS_CA_PATH, the client certificate pair or TEMPORAL_API_KEY',
    );
  }
  const tlsFile = (name: 'TEMPORAL_TLS_CERT_PATH' | 'TEMPORAL_TLS_KEY_PATH' | 'TEMPORAL_TLS_CA_PATH') =>
    e[name] === undefined ? undefined : readablePem(name, resolve(cwd, e[name]));
  return {
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    apiKey: e.TEMPORAL_API_KEY,
    tls:
      tlsGiven || e.TEMPORAL_TLS_SERVER_NAME
        ? {
            certPath: tlsFile('TEMPORAL_TLS_CERT_PATH'),
            keyPath: tlsFile('TEMPORAL_TLS_KEY_PATH'),
            caPath: tlsFile('TEMPORAL_TLS_CA_PATH'),
            serverName: e.TEMPORAL_TLS_SERVER_NAME,
          }
        : undefined,
    taskQueue: e.TEMPORAL_TASK_QUEUE,
    devServerPort: e.TEMPORAL_PORT,
    devServerUiPort: e.TEMPORAL_UI_PORT,
    searchAttributes: e.TEMPORAL_SEARCH_ATTRIBUTES,
    eagerStart: e.TEMPORAL_EAGER_START,
  };
}

/**
 * A TLS file must exist and hold PEM when the process starts, not when the first connection is
 * made: the message names the variable, so a wrong mount is obvious.
 */
function readablePem(name: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: cannot read ${path} (${(err as Error).message})`);
  }
  if (!text.includes('-----BEGIN ')) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: ${path} is not a PEM file (no "-----BEGIN" line)`);
  }
  return path;
}
