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

/** Thrown when the configured cluster cannot be reached; the message names the settings in play. */
export class TemporalConnectError extends Error {
  override name = 'TemporalConnectError';
}

/**
 * Connects with `connect` (`Connection.connect` or `NativeConnection.connect`), turning a failure
 * into a message that says where it tried and how (TLS, client certificate, API key), and what to check.
 */
export async function connectToTemporal<C>(
  temporal: Config['temporal'],
  connect: (options: TemporalConnectionOptions) => Promise<C>,
): Promise<C> {
  const options = temporalConnectionOptions(temporal);
  try {
    return await connect(options);
  } catch (err) {
    const how = !options.tls
      ? 'without TLS'
      : [
          'over TLS',
          temporal.tls?.certPath
            ? `client certificate TEMPORAL_TLS_CERT_PATH=${temporal.tls.certPath}`
            : 'no client certificate',
          temporal.tls?.caPath ? `CA TEMPORAL_TLS_CA_PATH=${temporal.tls.caPath}` : 'system CAs',
          temporal.tls?.serverName ? `server name ${temporal.tls.serverName}` : undefined,
          options.apiKey ? 'TEMPORAL_API_KEY' : undefined,
        ]
          .filter(Boolean)
          .join(', ');
    const cause = (err as { message?: unknown })?.message ?? String(err);
    throw new TemporalConnectError(
      `Cannot connect to Temporal at ${options.address} (TEMPORAL_ADDRESS), ${how}: ${String(cause)}\n` +
        'Check TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TEMPORAL_TLS_* / TEMPORAL_API_KEY settings.',
      { cause: err },
    );
  }
}
