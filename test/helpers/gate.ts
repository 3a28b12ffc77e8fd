/**
 * A point where a run waits until the test opens it: the way a test builds a slow run on purpose, so that what it
 * asserts "while the run goes on" cannot depend on how fast the CPU is.
 */
export class Gate {
  /** Resolves when the first run has reached the gate. */
  readonly reached: Promise<void>;
  private arrive!: () => void;
  private isOpen = false;
  private readonly held: (() => void)[] = [];

  constructor() {
    this.reached = new Promise((resolve) => (this.arrive = resolve));
  }

  /**
   * Waits until the gate is open. A run whose `signal` aborts passes at once, so a run cancelled while held
   * goes on to its own cancellation check (which is what a test of cancellation wants to see).
   */
  pass(signal?: AbortSignal): Promise<void> {
    this.arrive();
    if (this.isOpen || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.held.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Lets every held run, and every later one, through. */
  open(): void {
    this.isOpen = true;
    for (const release of this.held.splice(0)) release();
  }
}
