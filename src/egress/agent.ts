import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import { EgressPolicy, EgressRefusedError } from './policy';

/** Node's `dns.lookup` in its callback form, as `net.connect({ lookup })` calls it. */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** Options for {@link createEgressAgent}. */
export interface EgressAgentOptions {
  /**
   * Resolver behind the guard; tests give one that answers what they need without DNS.
   * @default dns.lookup
   */
  resolve?: LookupFunction;
  /**
   * Bound on establishing one connection.
   * @default 10_000
   */
  connectTimeoutMs?: number;
}

/**
 * A `lookup` for `net.connect` that hands the socket only addresses the policy allows. Because the
 * socket connects to exactly what this returns, a name that re-resolves to another address between
 * two connections (DNS rebinding) is judged again each time.
 */
export function guardedLookup(policy: EgressPolicy, resolve: LookupFunction = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, resolved) => {
      if (err) return callback(err, options.all ? [] : '');
      const addresses = (Array.isArray(resolved) ? resolved : [{ address: resolved, family: 0 }]).map((a) => ({
        address: a.address,
        family: a.family || isIP(a.address),
      }));
      let refusal: EgressRefusedError | undefined;
      const allowed = addresses.filter((a) => {
        try {
          policy.assertAllowed(hostname, a.address);
          return true;
        } catch (e) {
          refusal ??= e as EgressRefusedError;
          return false;
        }
      });
      if (allowed.length === 0) {
        return callback(
          refusal ?? Object.assign(new Error(`${hostname} did not resolve`), { code: 'ENOTFOUND' }),
          options.all ? [] : '',
        );
      }
      if (options.all) return callback(null, allowed);
      return callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}

/**
 * An undici Agent whose every connection goes through the egress policy: IP literals are checked
 * before connecting, host names in the socket's `lookup` (see {@link guardedLookup}). Redirects
 * followed through it open new connections, so they are checked too.
 */
export function createEgressAgent(policy: EgressPolicy, options: EgressAgentOptions = {}): Agent {
  const connectOne = buildConnector({
    timeout: options.connectTimeoutMs ?? 10_000,
    lookup: guardedLookup(policy, options.resolve),
  } as buildConnector.BuildOptions);
  const connect: buildConnector.connector = (opts, callback) => {
    // undici hands IPv6 literals without brackets; net.connect never calls `lookup` for a literal.
    const host = opts.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      try {
        policy.assertAllowed(host, host);
      } catch (err) {
        callback(err as Error, null);
        return;
      }
    }
    connectOne(opts, callback);
  };
  return new Agent({ connect });
}

/** `fetch` with the global signature, sending every request through the given undici Agent. */
export type EgressFetch = typeof fetch;

/** A `fetch` that can only reach what `policy` allows (see {@link createEgressAgent}). */
export function createEgressFetch(policy: EgressPolicy, options: EgressAgentOptions = {}): EgressFetch {
  const dispatcher = createEgressAgent(policy, options);
  // undici's own fetch (the one Node bundles, as a package) is the one that honours `dispatcher`.
  return ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher })) as unknown as EgressFetch;
}
