import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Why an address is not reachable from the outside world. Anything else (a public unicast address)
 * is {@link AddressClass.Public}.
 */
export const AddressClass = {
  Public: 'public',
  Unspecified: 'unspecified',
  Loopback: 'loopback',
  Private: 'private',
  LinkLocal: 'link-local',
  CarrierGradeNat: 'carrier-grade NAT',
  Multicast: 'multicast',
  Broadcast: 'broadcast',
  Reserved: 'reserved',
  Ipv4Mapped: 'IPv4-mapped IPv6',
  /** NAT64, 6to4, Teredo and SIIT: IPv6 forms that carry (and may reach) an IPv4 address. */
  Ipv4Embedded: 'IPv4-embedded IPv6',
  NotAnAddress: 'not an IP address',
} as const;
export type AddressClass = (typeof AddressClass)[keyof typeof AddressClass];

// ipaddr.js names its special ranges; every one of them is refused, grouped into the classes above.
const RANGE_CLASS: Record<string, AddressClass> = {
  unspecified: AddressClass.Unspecified,
  loopback: AddressClass.Loopback,
  private: AddressClass.Private,
  uniqueLocal: AddressClass.Private,
  deprecatedSiteLocal: AddressClass.Private,
  linkLocal: AddressClass.LinkLocal,
  carrierGradeNat: AddressClass.CarrierGradeNat,
  multicast: AddressClass.Multicast,
  broadcast: AddressClass.Broadcast,
  ipv4Mapped: AddressClass.Ipv4Mapped,
  rfc6145: AddressClass.Ipv4Embedded,
  rfc6052: AddressClass.Ipv4Embedded,
  '6to4': AddressClass.Ipv4Embedded,
  teredo: AddressClass.Ipv4Embedded,
};

// Global unicast (RFC 4291): IPv6 outside it is unassigned or special, whatever ipaddr.js calls it.
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

/**
 * Classifies an IP address (a zone index such as `%eth0` is ignored). Only {@link AddressClass.Public}
 * addresses are reachable by default.
 */
export function classifyAddress(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!isIP(bare)) return AddressClass.NotAnAddress;
  const ip = ipaddr.parse(bare);
  const range = ip.range();
  if (range !== 'unicast') return RANGE_CLASS[range] ?? AddressClass.Reserved;
  if (ip.kind() === 'ipv6' && !ip.match(GLOBAL_UNICAST_V6)) return AddressClass.Reserved;
  return AddressClass.Public;
}

/**
 * What tenants are told about a refused connection (in 422 details and the webhook delivery log): not
 * which address their URL reached, which would map our internal network for them.
 */
export const EGRESS_REFUSED_MESSAGE = 'refused: not a public address';

/**
 * A connection the egress policy refused; `code` lets network error reporting name it. Its `message`
 * is the tenant-safe {@link EGRESS_REFUSED_MESSAGE}; the host, address and why are fields, and
 * {@link EgressRefusedError.operatorMessage} spells them out for operator logs.
 */
export class EgressRefusedError extends Error {
  override name = 'EgressRefusedError';
  readonly code = 'EGRESS_REFUSED';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly addressClass: AddressClass,
  ) {
    super(EGRESS_REFUSED_MESSAGE);
  }

  /** The full story, for operators only: `refused to connect to host (10.0.0.7): private address ...`. */
  get operatorMessage(): string {
    const via = this.host === this.address ? this.address : `${this.host} (${this.address})`;
    return `refused to connect to ${via}: ${this.addressClass} address (EGRESS_ALLOW can open it)`;
  }
}

/** Options of an {@link EgressPolicy}. */
export interface EgressPolicyOptions {
  /** Told of every refusal, with the address: where operator logs learn what tenants are not told. */
  onRefused?: (refusal: EgressRefusedError) => void;
}

/** One parsed allow-list entry. */
type AllowEntry =
  | { kind: 'cidr'; range: [ipaddr.IPv4 | ipaddr.IPv6, number] }
  | { kind: 'host'; host: string }
  | { kind: 'suffix'; suffix: string };

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** Thrown for an allow-list entry that is neither a CIDR, an IP address nor a host name. */
export class EgressConfigError extends Error {
  override name = 'EgressConfigError';
}

/**
 * Parses one `EGRESS_ALLOW` entry: a CIDR (`10.0.0.0/8`, `fd00::/8`), an IP address (its own /32 or
 * /128), a host name (`localhost`), or `*.example.internal` for every name below that domain.
 */
function parseEntry(raw: string): AllowEntry {
  const entry = raw.trim().toLowerCase();
  if (entry.includes('/')) {
    try {
      return { kind: 'cidr', range: ipaddr.parseCIDR(entry) };
    } catch {
      throw new EgressConfigError(`"${raw}" is not a valid CIDR range`);
    }
  }
  const bare = entry.replace(/^\[|\]$/g, '');
  if (isIP(bare)) {
    const ip = ipaddr.parse(bare);
    return { kind: 'cidr', range: [ip, ip.kind() === 'ipv4' ? 32 : 128] };
  }
  if (entry.startsWith('*.') && HOSTNAME.test(entry.slice(2))) return { kind: 'suffix', suffix: entry.slice(1) };
  if (HOSTNAME.test(entry)) return { kind: 'host', host: entry };
  throw new EgressConfigError(`"${raw}" is not a CIDR range, an IP address or a host name`);
}

function normaliseHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/**
 * Which addresses outbound connections to user-supplied URLs (webhooks, model inputs) may reach:
 * public unicast addresses, plus whatever the allow-list names. Judged by {@link createEgressAgent}
 * on the address a socket actually connects to, so a host name that resolves (or re-resolves) to a
 * refused address is refused too.
 */
export class EgressPolicy {
  private readonly entries: AllowEntry[];

  /** @param allow allow-list entries, see {@link parseEntry}; throws {@link EgressConfigError} on a bad one */
  constructor(
    readonly allow: readonly string[] = [],
    private readonly options: EgressPolicyOptions = {},
  ) {
    this.entries = allow.filter((e) => e.trim() !== '').map(parseEntry);
  }

  /** Whether the allow-list names this host itself, which then may resolve to anything. */
  allowsHost(host: string): boolean {
    const name = normaliseHost(host);
    return this.entries.some(
      (e) => (e.kind === 'host' && e.host === name) || (e.kind === 'suffix' && name.endsWith(e.suffix)),
    );
  }

  /**
   * Throws {@link EgressRefusedError} unless a connection to `address` (reached through the name
   * `host`) is allowed: the host is allow-listed, or the address is public or in an allowed range.
   */
  assertAllowed(host: string, address: string): void {
    // Host entries name host names: an IP literal is judged by the address rules alone.
    if (!isIP(host.replace(/^\[|\]$/g, '')) && this.allowsHost(host)) return;
    const addressClass = classifyAddress(address);
    if (addressClass === AddressClass.Public) return;
    if (addressClass !== AddressClass.NotAnAddress && this.inAllowedRange(address)) return;
    const refusal = new EgressRefusedError(host, address, addressClass);
    this.options.onRefused?.(refusal);
    throw refusal;
  }

  private inAllowedRange(address: string): boolean {
    const ip = ipaddr.parse(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
    // No IPv4-mapped conversion either way: `127.0.0.1/32` does not open `::ffff:127.0.0.1`.
    return this.entries.some((e) => e.kind === 'cidr' && e.range[0].kind() === ip.kind() && ip.match(e.range));
  }
}

/** Splits `EGRESS_ALLOW` (comma separated) and validates every entry. */
export function parseEgressAllow(raw: string): string[] {
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  new EgressPolicy(entries);
  return entries;
}
