import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One webhook POST as the receiver saw it. */
export interface Delivery {
  requestId?: string;
  /** Standard Webhooks `webhook-id` header, when the sender sets it. */
  webhookId?: string;
  /** Arrival, in epoch milliseconds with sub-millisecond precision (comparable to Temporal's event times). */
  at: number;
  /** The status the receiver answered with: 2xx means the delivery counts. */
  answered: number;
  body: unknown;
}

export interface ReceiverOptions {
  /**
   * Share of deliveries answered with a 500, at random.
   * @default 0
   */
  failRate?: number;
  /** Random source for {@link failRate}; seeded runs pass their own. */
  random?: () => number;
}

/** Epoch milliseconds with the resolution of `performance.now()`. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A loopback webhook receiver: records every POST, answers 200 (or 500 for a random share), can be
 * taken down (connections refused) and brought back on the same port, and tells waiters when the
 * first accepted delivery of a request arrives.
 */
export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  /** First accepted delivery per request id. */
  readonly firstAccepted = new Map<string, Delivery>();
  private readonly waiters = new Map<string, (d: Delivery) => void>();
  private server: Server;
  private port = 0;

  private constructor(private readonly options: ReceiverOptions) {
    this.server = this.createServer();
  }

  /** Starts listening on a free port of 127.0.0.1. */
  static async start(options: ReceiverOptions = {}): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(options);
    await receiver.listen();
    return receiver;
  }

  /** Where to point `fal_webhook`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  get isUp(): boolean {
    return this.server.listening;
  }

  /** Resolves with the first accepted delivery of `requestId`, at once if it has arrived already. */
  waitFor(requestId: string): Promise<Delivery> {
    const seen = this.firstAccepted.get(requestId);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.set(requestId, resolve));
  }

  /** Stops accepting connections (senders see ECONNREFUSED) and drops open ones. */
  async down(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port. */
  async up(): Promise<void> {
    if (this.server.listening) return;
    this.server = this.createServer();
    await this.listen();
  }

  async close(): Promise<void> {
    await this.down();
  }

  private async listen(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  private createServer(): Server {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = nowMs();
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        const failRate = this.options.failRate ?? 0;
        const answered = failRate > 0 && (this.options.random ?? Math.random)() < failRate ? 500 : 200;
        const requestId = (body as { request_id?: unknown } | undefined)?.request_id;
        const header = req.headers['webhook-id'];
        const delivery: Delivery = {
          requestId: typeof requestId === 'string' ? requestId : undefined,
          webhookId: typeof header === 'string' ? header : undefined,
          at,
          answered,
          body,
        };
        this.deliveries.push(delivery);
        if (answered === 200 && delivery.requestId && !this.firstAccepted.has(delivery.requestId)) {
          this.firstAccepted.set(delivery.requestId, delivery);
          this.waiters.get(delivery.requestId)?.(delivery);
          this.waiters.delete(delivery.requestId);
        }
        res.writeHead(answered, { 'content-type': 'application/json' }).end(answered === 200 ? '{}' : '{"error":1}');
      });
    });
    server.keepAliveTimeout = 30_000;
    return server;
  }
}
