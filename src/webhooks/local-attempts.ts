/**
 * Which webhook first attempts may run as local activities (InferenceRequestInput.firstWebhookAttemptLocal).
 *
 * A local activity holds its workflow task, and with it one of the worker's workflow task slots, until the receiver
 * answers: a receiver that takes the whole attempt timeout would hold a slot that long, and a few such receivers
 * would stall every request on the worker. So a local attempt is made only while few are under way, and only to a
 * receiver that answered quickly last time; any other attempt is deferred to an ordinary activity, which waits in
 * the task queue instead. Nothing has been sent when an attempt is deferred, so the receiver gets it once.
 */

/** Options of {@link LocalAttemptGate}. */
export interface LocalAttemptGateOptions {
  /**
   * Local attempts under way at once, at most; 0 = every attempt is an activity.
   * @default 8
   */
  maxInFlight?: number;
  /**
   * An attempt that takes this long (answered or not) marks its receiver slow.
   * @default 1000
   */
  slowAfterMs?: number;
  /**
   * How long a slow receiver gets activities only, unless an attempt finds it fast again sooner.
   * @default 600_000
   */
  rememberSlowMs?: number;
  /**
   * Slow receivers remembered; the oldest marks go first.
   * @default 10_000
   */
  maxRemembered?: number;
  now?: () => number;
}

export class LocalAttemptGate {
  private inFlight = 0;
  /** Origin → until when its receiver counts as slow, in insertion order (oldest first). */
  private readonly slowUntil = new Map<string, number>();
  private readonly maxInFlight: number;
  private readonly slowAfterMs: number;
  private readonly rememberSlowMs: number;
  private readonly maxRemembered: number;
  private readonly now: () => number;

  constructor(options: LocalAttemptGateOptions = {}) {
    this.maxInFlight = options.maxInFlight ?? 8;
    this.slowAfterMs = options.slowAfterMs ?? 1000;
    this.rememberSlowMs = options.rememberSlowMs ?? 600_000;
    this.maxRemembered = options.maxRemembered ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** A place for a local attempt to `url`, to be left when it ends; undefined = make it an activity. */
  tryEnter(url: string): (() => void) | undefined {
    if (this.inFlight >= this.maxInFlight || this.isSlow(originOf(url))) return undefined;
    this.inFlight++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.inFlight--;
    };
  }

  /** What an attempt to `url` took, local or not: a slow one marks its receiver, a quick one clears the mark. */
  record(url: string, latencyMs: number): void {
    const origin = originOf(url);
    this.slowUntil.delete(origin);
    if (latencyMs < this.slowAfterMs) return;
    this.slowUntil.set(origin, this.now() + this.rememberSlowMs);
    if (this.slowUntil.size > this.maxRemembered) this.slowUntil.delete(this.slowUntil.keys().next().value!);
  }

  private isSlow(origin: string): boolean {
    const until = this.slowUntil.get(origin);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.slowUntil.delete(origin);
    return false;
  }
}

/** Receivers are told apart by scheme, host and port; a URL that does not parse stands for itself. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
