import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ModelContext, ModelRunner } from '../types';

/** Options of the built-in `noop` model (`backend.options` in the models file). */
export const NoopOptions = z
  .object({
    /**
     * How long each run takes, in ms; 0 answers at once.
     * @default 0
     */
    delayMs: z.number().int().min(0).default(0),
  })
  .strict();
export type NoopOptions = z.infer<typeof NoopOptions>;

/**
 * A model that does no work and answers with its input. The benchmark uses it so that what it
 * measures is the queue's own overhead; the chaos run uses the echoed input to tell which submit
 * attempt a webhook belongs to.
 */
export function createNoopModel(options: NoopOptions): ModelRunner {
  return {
    async run(input: unknown, ctx: ModelContext): Promise<unknown> {
      // The sleep rejects with an AbortError when the request is cancelled, as a real model would stop.
      if (options.delayMs > 0) await sleep(options.delayMs, undefined, { signal: ctx.signal });
      return input;
    },
  };
}
