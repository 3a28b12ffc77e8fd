/** The latency probe's only activity: returns its input. */
export const latencyActivities = {
  async echo(value: number): Promise<number> {
    return value;
  },
};

export type LatencyActivities = typeof latencyActivities;
