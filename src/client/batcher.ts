/**
 * Calls to one Temporal workflow that arrive while earlier ones are in flight go together in the next call: a queue
 * workflow then pays one history event (or one query) for many callers instead of one each. Used for the admission
 * queue's enqueue updates and place queries (API) and its release signals (activities).
 */
export interface BatcherOptions<Item, Result> {
  /** Calls in flight at once per key; more let a busy workflow take several in one workflow task. */
  maxInFlight: number;
  /** Items per call, which keeps each history event (or query) small. @default unbounded */
  maxBatch?: number;
  /** One call for the items, answering each in order. A rejection rejects every item of the batch. */
  send(key: string, items: Item[]): Promise<Result[]>;
}

interface Pending<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (err: unknown) => void;
}

/** Batches items per key (a workflow id, a model); see {@link BatcherOptions}. */
export class KeyedBatcher<Item, Result> {
  private readonly queues = new Map<string, { pending: Pending<Item, Result>[]; inFlight: number }>();

  constructor(private readonly options: BatcherOptions<Item, Result>) {}

  /** Adds the item to the key's next call; resolves with its own answer. */
  add(key: string, item: Item): Promise<Result> {
    const queue = this.queues.get(key) ?? { pending: [], inFlight: 0 };
    this.queues.set(key, queue);
    return new Promise<Result>((resolve, reject) => {
      queue.pending.push({ item, resolve, reject });
      this.flush(key);
    });
  }

  private flush(key: string): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    while (queue.inFlight < this.options.maxInFlight && queue.pending.length > 0) {
      const batch = queue.pending.splice(0, this.options.maxBatch ?? Infinity);
      queue.inFlight++;
      void this.call(key, batch).finally(() => {
        queue.inFlight--;
        if (queue.pending.length > 0) this.flush(key);
        else if (queue.inFlight === 0) this.queues.delete(key);
      });
    }
  }

  private async call(key: string, batch: Pending<Item, Result>[]): Promise<void> {
    try {
      const results = await this.options.send(
        key,
        batch.map((p) => p.item),
      );
      if (results.length !== batch.length) {
        throw new Error(`a batched call answered ${results.length} of ${batch.length} items`);
      }
      batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (err) {
      batch.forEach((p) => p.reject(err));
    }
  }
}
