/**
 * The baseline's two activities: the same work our request does (a model call that does nothing,
 * one webhook POST), with nothing of ours around it.
 */
export function createBaselineActivities(userAgent: string, timeoutMs: number) {
  return {
    /** No-op inference: answers with its input. */
    async noopInference(input: unknown): Promise<unknown> {
      return input;
    },
    /** One POST of the result to the receiver; a non-2xx answer fails the attempt (Temporal retries it). */
    async postWebhook({ url, body }: { url: string; body: unknown }): Promise<number> {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': userAgent },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.arrayBuffer();
      if (response.status < 200 || response.status >= 300) throw new Error(`receiver answered ${response.status}`);
      return response.status;
    },
  };
}

export type BaselineActivities = ReturnType<typeof createBaselineActivities>;
