import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import type { Config } from '../config';

/** Where Temporal listens when nothing is configured (the dev server's default port). */
export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

/**
 * Connection options for any Temporal cluster from configuration alone: plain (dev server),
 * mTLS (self-hosted), or API key over TLS (Temporal Cloud). Works for `Connection` and `NativeConnection`.
 */
export function temporalConnectionOptions(temporal: Config['temporal']): TemporalConnectionOptions {
  const { tls } = temporal;
  const tlsConfig: TLSConfig | undefined = tls
    ? {
        serverNameOverride: tls.serverName,
        serverRootCACertificate: tls.caPath ? readFileSync(tls.caPath) : undefined,
        clientCertPair:
          tls.certPath && tls.keyPath ? { crt: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) } : undefined,
      }
    : undefined;
  return {
    address: temporal.address ?? DEFAULT_TEMPORAL_ADDRESS,
    // Temporal Cloud's API keys only travel over TLS.
    tls: tlsConfig ?? (temporal.apiKey ? true : undefined),
    apiKey: temporal.apiKey,
  };
}
