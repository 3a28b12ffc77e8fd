import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST as the receiver saw it, raw body included (signatures are over the exact bytes). */
export interface Delivery {
  n: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
  at: number;
}

/** How the receiver answers the n-th request (1-based): a status (and headers), or `hang` to never answer. */
export type Answer = { status: number; headers?: Record<string, string> } | 'hang';

/**
 * A webhook receiver on 127.0.0.1 that records every request and answers as the test scripts it.
 * It can stop listening and listen again on the same port, to play a receiver that is down.
 */
export class Receiver {
  readonly deliveries: Delivery[] = [];
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly answer: (n: number, delivery: Delivery) => Answer,
    public port: number,
  ) {}

  static async start(answer: (n: number, delivery: Delivery) => Answer = () => ({ status: 200 })): Promise<Receiver> {
    const receiver = new Receiver(answer, 0);
    await receiver.listen();
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Starts listening (again), on the port it had before if it had one. */
  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        const delivery: Delivery = {
          n: this.deliveries.length + 1,
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
          json,
          at: Date.now(),
        };
        this.deliveries.push(delivery);
        const answer = this.answer(delivery.n, delivery);
        if (answer === 'hang') {
          this.hanging.add(res);
          return;
        }
        res.writeHead(answer.status, answer.headers).end();
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections to its port are refused until {@link listen}. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves once `n` requests have arrived. */
  async waitFor(n: number, timeoutMs = 30_000): Promise<Delivery> {
    const deadline = Date.now() + timeoutMs;
    while (this.deliveries.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} deliveries, got ${this.deliveries.length}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.deliveries[n - 1]!;
  }
}

/** Answers the first `failures` requests with `failure`, then 200. */
export function failThenSucceed(failures: number, failure: Answer): (n: number) => Answer {
  return (n) => (n <= failures ? failure : { status: 200 });
}
