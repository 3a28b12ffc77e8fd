import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { guardedLookup, createEgressFetch, type LookupFunction } from '../../src/egress/agent';
import { AddressClass, EgressPolicy } from '../../src/egress/policy';
import { createInputFetcher, InputFetchError } from '../../src/models/input-files';

/**
 * Real connections through the egress guard. Every address a test would connect to if the guard
 * failed is on this machine (loopback or unspecified); other classes are checked at the lookup,
 * which decides what the socket connects to.
 */
interface Peer {
  server: Server;
  port: number;
  hits: string[];
}

async function peer(host: string, port = 0): Promise<Peer> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    // A fresh connection for every request, so each one is judged again.
    res.writeHead(200, { connection: 'close' }).end('ok');
  });
  server.listen(port, host);
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, hits };
}

let v4: Peer;
let v6: Peer;
beforeAll(async () => {
  v4 = await peer('127.0.0.1');
  v6 = await peer('::1');
});
afterAll(async () => {
  for (const p of [v4, v6]) {
    p.server.closeAllConnections();
    await new Promise((r) => p.server.close(r));
  }
});

/** The cause a refused fetch carries (undici wraps it in "fetch failed"). */
async function refusal(promise: Promise<unknown>): Promise<{ code?: string; addressClass?: string; message: string }> {
  const err = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as { cause?: { code?: string; addressClass?: string; message: string } } | undefined;
  expect(err?.cause).toBeDefined();
  return err!.cause!;
}

/** A resolver that answers from a table, as DNS would, without DNS. */
function fakeDns(table: Record<string, string[] | (() => string[])>): LookupFunction {
  return (hostname, options, callback) => {
    const entry = table[hostname];
    const addresses = typeof entry === 'function' ? entry() : entry;
    if (!addresses) {
      callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), options.all ? [] : '');
      return;
    }
    const list = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    if (options.all) callback(null, list);
    else callback(null, list[0]!.address, list[0]!.family);
  };
}

describe('egress guard on real connections', () => {
  const strictFetch = createEgressFetch(new EgressPolicy());

  it.each([
    ['an IPv4 loopback literal', () => `http://127.0.0.1:${v4.port}/`, AddressClass.Loopback],
    ['an IPv6 loopback literal', () => `http://[::1]:${v6.port}/`, AddressClass.Loopback],
    ['loopback as IPv4-mapped IPv6', () => `http://[::ffff:127.0.0.1]:${v4.port}/`, AddressClass.Ipv4Mapped],
    ['the IPv4 unspecified address', () => `http://0.0.0.0:${v4.port}/`, AddressClass.Unspecified],
    ['the IPv6 unspecified address', () => `http://[::]:${v6.port}/`, AddressClass.Unspecified],
    ['loopback in decimal notation', () => `http://2130706433:${v4.port}/`, AddressClass.Loopback],
    ['loopback in hex notation', () => `http://0x7f.1:${v4.port}/`, AddressClass.Loopback],
    ['the host name localhost', () => `http://localhost:${v4.port}/`, AddressClass.Loopback],
  ])('refuses %s before connecting', async (_what, url, expected) => {
    const cause = await refusal(strictFetch(url()));

    expect(cause.code).toBe('EGRESS_REFUSED');
    expect(cause.addressClass).toBe(expected);
    expect(v4.hits).toHaveLength(0);
    expect(v6.hits).toHaveLength(0);
  });

  it('judges a host name on what it resolves to at connect time (DNS rebinding)', async () => {
    let answers = 0;
    // First a permitted address, then (same name, a moment later) one that is not.
    const fetchVia = createEgressFetch(new EgressPolicy(['127.0.0.1/32']), {
      resolve: fakeDns({ 'rebind.test': () => (answers++ === 0 ? ['127.0.0.1'] : ['127.0.0.2']) }),
    });

    const first = await fetchVia(`http://rebind.test:${v4.port}/first`);
    expect(first.status).toBe(200);
    await first.text();
    const cause = await refusal(fetchVia(`http://rebind.test:${v4.port}/second`));

    expect(cause.code).toBe('EGRESS_REFUSED');
    expect(cause).toMatchObject({
      host: 'rebind.test',
      address: '127.0.0.2',
      message: 'refused: not a public address',
    });
    expect(v4.hits.splice(0)).toEqual(['/first']);
  });

  it('checks every redirect hop', async () => {
    const fetchInput = createInputFetcher({
      maxBytes: 1024,
      timeoutMs: 2_000,
      egress: new EgressPolicy(['localhost']),
    });
    // An allowed host that redirects to an address the allow-list does not open.
    const redirecting = await peer('127.0.0.1');
    redirecting.server.removeAllListeners('request');
    redirecting.server.on('request', (_req, res) =>
      res.writeHead(302, { location: `http://127.0.0.1:${v4.port}/secret` }).end(),
    );
    try {
      const err = await fetchInput(`http://localhost:${redirecting.port}/image.png`, new AbortController().signal).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputFetchError);
      expect((err as Error).message).toMatch(/refused: not a public address/);
      expect(v4.hits).toHaveLength(0);
    } finally {
      redirecting.server.closeAllConnections();
      await new Promise((r) => redirecting.server.close(r));
    }
  });

  it('refuses loopback for model inputs when no allow-list is given', async () => {
    const fetchInput = createInputFetcher({ maxBytes: 1024, timeoutMs: 2_000 });

    const err = await fetchInput(`http://127.0.0.1:${v4.port}/cat.png`, new AbortController().signal).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(InputFetchError);
    expect((err as Error).message).toBe(
      `could not fetch from http://127.0.0.1:${v4.port}: refused: not a public address`,
    );
    expect(v4.hits).toHaveLength(0);
  });

  describe('the allow-list opens exactly what it names', () => {
    it('127.0.0.1/32 opens 127.0.0.1 by any name, but not ::1 nor ::ffff:127.0.0.1', async () => {
      const fetchVia = createEgressFetch(new EgressPolicy(['127.0.0.1/32']));

      expect((await fetchVia(`http://127.0.0.1:${v4.port}/a`)).status).toBe(200);
      expect((await fetchVia(`http://localhost:${v4.port}/b`)).status).toBe(200);
      expect((await refusal(fetchVia(`http://[::1]:${v6.port}/c`))).code).toBe('EGRESS_REFUSED');
      expect((await refusal(fetchVia(`http://[::ffff:127.0.0.1]:${v4.port}/d`))).code).toBe('EGRESS_REFUSED');
      expect(v4.hits.splice(0)).toEqual(['/a', '/b']);
      expect(v6.hits).toHaveLength(0);
    });

    it('::1 opens the IPv6 loopback only', async () => {
      const fetchVia = createEgressFetch(new EgressPolicy(['::1']));

      expect((await fetchVia(`http://[::1]:${v6.port}/a`)).status).toBe(200);
      expect((await refusal(fetchVia(`http://127.0.0.1:${v4.port}/b`))).code).toBe('EGRESS_REFUSED');
      expect(v6.hits.splice(0)).toEqual(['/a']);
      expect(v4.hits).toHaveLength(0);
    });

    it('a host name opens that name, not its address under another name', async () => {
      const fetchVia = createEgressFetch(new EgressPolicy(['localhost']));

      expect((await fetchVia(`http://localhost:${v4.port}/a`)).status).toBe(200);
      expect((await refusal(fetchVia(`http://127.0.0.1:${v4.port}/b`))).code).toBe('EGRESS_REFUSED');
      expect(v4.hits.splice(0)).toEqual(['/a']);
    });
  });
});

describe('the guarded lookup', () => {
  const lookup = (policy: EgressPolicy, addresses: string[], all = true) =>
    new Promise<{ err: (Error & { addressClass?: string; operatorMessage?: string }) | null; result: unknown }>(
      (resolve) =>
        guardedLookup(policy, fakeDns({ 'receiver.test': addresses }))('receiver.test', { all }, (err, result) =>
          resolve({ err, result }),
        ),
    );

  it.each([
    ['10.0.0.7', AddressClass.Private],
    ['192.168.0.10', AddressClass.Private],
    ['172.20.0.1', AddressClass.Private],
    ['169.254.169.254', AddressClass.LinkLocal],
    ['100.64.1.1', AddressClass.CarrierGradeNat],
    ['224.0.0.251', AddressClass.Multicast],
    ['240.0.0.9', AddressClass.Reserved],
    ['fd00::7', AddressClass.Private],
    ['fe80::7', AddressClass.LinkLocal],
    ['ff05::2', AddressClass.Multicast],
    ['::ffff:10.0.0.7', AddressClass.Ipv4Mapped],
    ['64:ff9b::a00:7', AddressClass.Ipv4Embedded],
  ])('hands the socket nothing when a host name resolves to %s (%s)', async (address, expected) => {
    const { err, result } = await lookup(new EgressPolicy(), [address]);

    expect(err?.addressClass).toBe(expected);
    expect(err).toMatchObject({ host: 'receiver.test', address, message: 'refused: not a public address' });
    expect(err?.operatorMessage).toContain(`receiver.test (${address})`);
    expect(result).toEqual([]);
  });

  it('drops the refused addresses of a name that resolves to several, keeping the public ones', async () => {
    const { err, result } = await lookup(new EgressPolicy(), ['10.0.0.7', '93.184.216.34', '::1']);

    expect(err).toBeNull();
    expect(result).toEqual([{ address: '93.184.216.34', family: 4 }]);
  });

  it('answers in the single-address form when the socket asks for it', async () => {
    const { err, result } = await lookup(new EgressPolicy(['10.0.0.0/8']), ['10.0.0.7'], false);

    expect(err).toBeNull();
    expect(result).toBe('10.0.0.7');
  });
});
