/** A token bucket's shape: at most `burst` calls at once, regaining `burst` calls over `periodMs`. */
export interface Rate {
  burst: number;
  periodMs: number;
}

/** `N/duration` (`10/10m`): N at once, N again over the duration; the duration as `parseDuration` reads it. */
export function parseRate(text: string, parseDuration: (text: string) => number | undefined): Rate | undefined {
  const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(text);
  const periodMs = m ? parseDuration(m[2]!) : undefined;
  const burst = Number(m?.[1]);
  return periodMs && burst > 0 ? { burst, periodMs } : undefined;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets by key, in this process's memory (each API process limits on its own). Buckets that
 * have filled up again are forgotten once there are more than `maxKeys`; beyond that the oldest go.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rate: Rate,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {}

  /** Milliseconds until `key` has a token; 0 when it has one now. */
  waitMs(key: string): number {
    const tokens = this.level(key);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * this.rate.periodMs) / this.rate.burst);
  }

  /** Takes one token from `key` (callers check {@link waitMs} first). */
  take(key: string): void {
    const tokens = this.level(key);
    this.buckets.delete(key);
    this.buckets.set(key, { tokens: tokens - 1, at: this.now() });
    if (this.buckets.size > this.maxKeys) this.prune();
  }

  private level(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return this.rate.burst;
    const regained = ((this.now() - bucket.at) * this.rate.burst) / this.rate.periodMs;
    return Math.min(this.rate.burst, bucket.tokens + regained);
  }

  private prune(): void {
    for (const key of this.buckets.keys()) if (this.level(key) >= this.rate.burst) this.buckets.delete(key);
    // Map order is the order of last use: the first keys are the longest idle.
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break;
      this.buckets.delete(key);
    }
  }
}

/** Both limits of a call that counts against two keys (say, one request and its owner). */
export class PairedLimit {
  constructor(
    private readonly first: TokenBuckets,
    private readonly second: TokenBuckets,
  ) {}

  /** Takes a token from both keys and answers 0, or answers how long to wait and takes nothing. */
  tryTake(firstKey: string, secondKey: string): number {
    const waitMs = Math.max(this.first.waitMs(firstKey), this.second.waitMs(secondKey));
    if (waitMs > 0) return waitMs;
    this.first.take(firstKey);
    this.second.take(secondKey);
    return 0;
  }
}
