import { PairedLimit, parseRate, TokenBuckets } from '../../src/api/rate-limit';
import { loadConfig, parseDuration } from '../../src/config';

/** The token buckets behind the redelivery limit, on an injected clock. */
describe('token buckets', () => {
  it('allows a burst, then one call per period/burst as tokens come back', () => {
    let now = 0;
    const buckets = new TokenBuckets({ burst: 3, periodMs: 3_000 }, () => now);
    for (let i = 0; i < 3; i++) {
      expect(buckets.waitMs('a')).toBe(0);
      buckets.take('a');
    }
    expect(buckets.waitMs('a')).toBe(1_000);
    // Other keys have buckets of their own.
    expect(buckets.waitMs('b')).toBe(0);
    now = 400;
    expect(buckets.waitMs('a')).toBe(600);
    now = 1_000;
    expect(buckets.waitMs('a')).toBe(0);
    buckets.take('a');
    expect(buckets.waitMs('a')).toBe(1_000);
    // Never more than the burst, however long it was idle.
    now = 1_000_000;
    for (let i = 0; i < 3; i++) buckets.take('a');
    expect(buckets.waitMs('a')).toBeGreaterThan(0);
  });

  it('forgets refilled buckets beyond maxKeys, so unbounded keys take bounded memory', () => {
    let now = 0;
    const buckets = new TokenBuckets({ burst: 1, periodMs: 1_000 }, () => now, 2);
    buckets.take('a');
    buckets.take('b');
    now = 10_000;
    buckets.take('c');
    expect((buckets as unknown as { buckets: Map<string, unknown> }).buckets.size).toBeLessThanOrEqual(2);
    expect(buckets.waitMs('c')).toBeGreaterThan(0);
  });

  it('takes from both keys of a pair, or from neither', () => {
    const now = 0;
    const perRequest = new TokenBuckets({ burst: 5, periodMs: 5_000 }, () => now);
    const perOwner = new TokenBuckets({ burst: 2, periodMs: 2_000 }, () => now);
    const limit = new PairedLimit(perRequest, perOwner);
    expect(limit.tryTake('r1', 'o')).toBe(0);
    expect(limit.tryTake('r2', 'o')).toBe(0);
    expect(limit.tryTake('r3', 'o')).toBe(1_000);
    // The refused call took nothing from its request's bucket.
    expect(perRequest.waitMs('r3')).toBe(0);
    expect(limit.tryTake('r1', 'other')).toBe(0);
  });

  it('reads N/duration rates, and TRUST_PROXY, from the environment', () => {
    expect(parseRate('10/10m', parseDuration)).toEqual({ burst: 10, periodMs: 600_000 });
    expect(parseRate('0/1m', parseDuration)).toBeUndefined();
    expect(parseRate('ten', parseDuration)).toBeUndefined();
    const defaults = loadConfig({});
    expect(defaults.http.redelivery).toEqual({
      perRequest: { burst: 10, periodMs: 600_000 },
      perOwner: { burst: 300, periodMs: 3_600_000 },
    });
    expect(defaults.http.trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).http.trustProxy).toBe('loopback, 10.0.0.0/8');
    expect(loadConfig({ TRUST_PROXY: '1' }).http.trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'true' }).http.trustProxy).toBe(true);
    expect(() => loadConfig({ TRUST_PROXY: 'proxy.internal' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ REDELIVER_RATE_PER_OWNER: 'lots' })).toThrow(/REDELIVER_RATE_PER_OWNER/);
  });
});
