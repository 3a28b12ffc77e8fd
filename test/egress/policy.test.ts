import { ConfigError, loadConfig } from '../../src/config';
import {
  AddressClass,
  EgressConfigError,
  EgressPolicy,
  EgressRefusedError,
  classifyAddress,
} from '../../src/egress/policy';

/** The address classification and the allow-list, without any socket. */
describe('egress policy', () => {
  const strict = new EgressPolicy();

  it.each([
    ['127.0.0.1', AddressClass.Loopback],
    ['127.255.255.254', AddressClass.Loopback],
    ['::1', AddressClass.Loopback],
    ['[::1]', AddressClass.Loopback],
    ['10.1.2.3', AddressClass.Private],
    ['172.16.0.1', AddressClass.Private],
    ['172.31.255.255', AddressClass.Private],
    ['192.168.1.1', AddressClass.Private],
    ['fc00::1', AddressClass.Private],
    ['fd12:3456::1', AddressClass.Private],
    ['fec0::1', AddressClass.Private],
    ['169.254.169.254', AddressClass.LinkLocal],
    ['fe80::1', AddressClass.LinkLocal],
    ['fe80::1%eth0', AddressClass.LinkLocal],
    ['100.64.0.1', AddressClass.CarrierGradeNat],
    ['100.127.255.254', AddressClass.CarrierGradeNat],
    ['224.0.0.1', AddressClass.Multicast],
    ['239.255.255.250', AddressClass.Multicast],
    ['ff02::1', AddressClass.Multicast],
    ['0.0.0.0', AddressClass.Unspecified],
    ['0.1.2.3', AddressClass.Unspecified],
    ['::', AddressClass.Unspecified],
    ['255.255.255.255', AddressClass.Broadcast],
    ['240.0.0.1', AddressClass.Reserved],
    ['192.0.2.1', AddressClass.Reserved],
    ['198.18.0.1', AddressClass.Reserved],
    ['2001:db8::1', AddressClass.Reserved],
    ['::7f00:1', AddressClass.Reserved],
    ['100::1', AddressClass.Reserved],
    ['::ffff:127.0.0.1', AddressClass.Ipv4Mapped],
    ['::ffff:7f00:1', AddressClass.Ipv4Mapped],
    ['::ffff:10.0.0.1', AddressClass.Ipv4Mapped],
    ['::ffff:8.8.8.8', AddressClass.Ipv4Mapped],
    ['64:ff9b::a00:1', AddressClass.Ipv4Embedded],
    ['2002:7f00:1::1', AddressClass.Ipv4Embedded],
    ['2001:0:4136:e378::1', AddressClass.Ipv4Embedded],
    ['example.com', AddressClass.NotAnAddress],
  ])('refuses %s (%s)', (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
    let thrown: unknown;
    try {
      strict.assertAllowed('receiver.example', address);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(EgressRefusedError);
    expect((thrown as EgressRefusedError).addressClass).toBe(expected);
    // Tenants see no address; operators do.
    expect((thrown as Error).message).toBe('refused: not a public address');
    expect((thrown as EgressRefusedError).operatorMessage).toContain(`receiver.example (${address})`);
  });

  it('tells the operator hook which address was refused, and the tenant only that it was not public', () => {
    const seen: string[] = [];
    const policy = new EgressPolicy([], { onRefused: (refusal) => seen.push(refusal.operatorMessage) });
    expect(() => policy.assertAllowed('hooks.tenant.example', '10.1.2.3')).toThrow(/^refused: not a public address$/);
    expect(seen).toEqual([
      'refused to connect to hooks.tenant.example (10.1.2.3): private address (EGRESS_ALLOW can open it)',
    ]);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001:80e::200e'])(
    'allows the public address %s',
    (address) => {
      expect(classifyAddress(address)).toBe(AddressClass.Public);
      expect(() => strict.assertAllowed('receiver.example', address)).not.toThrow();
    },
  );

  describe('allow-list', () => {
    it('a CIDR opens its range, in its own address family only', () => {
      const policy = new EgressPolicy(['10.0.0.0/8', 'fd00::/8']);

      expect(() => policy.assertAllowed('a', '10.255.0.1')).not.toThrow();
      expect(() => policy.assertAllowed('a', 'fd00::5')).not.toThrow();
      expect(() => policy.assertAllowed('a', '172.16.0.1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('a', 'fc00::1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('a', '::ffff:10.0.0.1')).toThrow(EgressRefusedError);
    });

    it('an address opens exactly that address', () => {
      const policy = new EgressPolicy(['127.0.0.1', '[::1]']);

      expect(() => policy.assertAllowed('127.0.0.1', '127.0.0.1')).not.toThrow();
      expect(() => policy.assertAllowed('::1', '::1')).not.toThrow();
      expect(() => policy.assertAllowed('127.0.0.2', '127.0.0.2')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('x', '::ffff:127.0.0.1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('x', '0.0.0.0')).toThrow(EgressRefusedError);
    });

    it('a host name opens that name, whatever it resolves to, and nothing else', () => {
      const policy = new EgressPolicy(['localhost', '*.internal.test']);

      expect(policy.allowsHost('localhost')).toBe(true);
      expect(policy.allowsHost('LOCALHOST.')).toBe(true);
      expect(() => policy.assertAllowed('localhost', '127.0.0.1')).not.toThrow();
      expect(() => policy.assertAllowed('a.internal.test', '10.0.0.1')).not.toThrow();
      expect(() => policy.assertAllowed('b.a.internal.test', '10.0.0.1')).not.toThrow();
      // The address itself, reached by another name, stays closed.
      expect(() => policy.assertAllowed('127.0.0.1', '127.0.0.1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('internal.test', '10.0.0.1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('xinternal.test', '10.0.0.1')).toThrow(EgressRefusedError);
      expect(() => policy.assertAllowed('localhost.evil.test', '127.0.0.1')).toThrow(EgressRefusedError);
    });

    it.each(['not a host!', '10.0.0.0/33', '::1/129', 'http://localhost', '*'])('rejects the entry "%s"', (entry) => {
      expect(() => new EgressPolicy([entry])).toThrow(EgressConfigError);
    });

    it('is read from EGRESS_ALLOW, and a bad entry stops start-up naming the variable', () => {
      expect(loadConfig({}).egress.allow).toEqual([]);
      expect(loadConfig({ EGRESS_ALLOW: ' 10.0.0.0/8, localhost ,' }).egress.allow).toEqual([
        '10.0.0.0/8',
        'localhost',
      ]);
      expect(() => loadConfig({ EGRESS_ALLOW: '10.0.0.0/99' })).toThrow(ConfigError);
      expect(() => loadConfig({ EGRESS_ALLOW: '10.0.0.0/99' })).toThrow(/EGRESS_ALLOW/);
    });
  });
});
