import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parsePrediction, type CogPrediction } from './cog-protocol';

/**
 * Where this process listens for a Cog server's webhooks, which carry a prediction's logs while it runs.
 * Cog has no status endpoint to poll ("polling for prediction status is not currently supported", cog's
 * docs/http.md), so its webhooks are the only way to see logs before the prediction ends.
 */
export interface CogWebhookOptions {
  /** Address to bind. @default '127.0.0.1' */
  host: string;
  /** Port to bind; 0 picks a free one each time the listener opens. @default 0 */
  port: number;
  /** Base URL Cog servers reach the listener at; unset = `http://<host>:<bound port>`. */
  publicUrl?: string;
}

const MAX_WEBHOOK_BYTES = 8 * 1024 * 1024;

/**
 * Cog sends a prediction's whole log so far each time; this forwards each complete line once.
 * Webhooks may arrive out of order, so a log no longer than what was already seen is ignored.
 */
export class LogForwarder {
  private forwarded = 0;
  private latest = '';

  constructor(private readonly emit: (line: string) => void) {}

  update(logs: string): void {
    if (logs.length <= this.latest.length || !logs.startsWith(this.latest.slice(0, this.forwarded))) return;
    this.latest = logs;
    const end = logs.lastIndexOf('\n') + 1;
    if (end > this.forwarded) this.send(logs.slice(this.forwarded, end), end);
  }

  /** Forwards the rest, including a last line without a newline; `logs` is the final log when known. */
  finish(logs?: string): void {
    if (logs !== undefined) this.update(logs);
    if (this.latest.length > this.forwarded) this.send(this.latest.slice(this.forwarded), this.latest.length);
  }

  private send(text: string, end: number): void {
    this.forwarded = end;
    for (const line of text.split(/\r?\n|\r/)) if (line.trim() !== '') this.emit(line);
  }
}

export interface WebhookSubscription {
  /** The URL to give Cog as the prediction's `webhook`. */
  url: string;
  close(): Promise<void>;
}

/**
 * The HTTP listener Cog servers POST log updates to. One per process, shared by every Cog model; it is
 * open only while a prediction is in flight, and each prediction gets an unguessable path of its own.
 */
export class CogWebhookReceiver {
  private readonly subscribers = new Map<string, (prediction: CogPrediction) => void>();
  private server: Server | undefined;
  private baseUrl: Promise<string> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: CogWebhookOptions) {}

  /** Starts receiving a prediction's updates; `close()` ends it (and the listener, if it was the last). */
  async subscribe(onUpdate: (prediction: CogPrediction) => void): Promise<WebhookSubscription> {
    await this.closing;
    const token = randomBytes(16).toString('hex');
    this.subscribers.set(token, onUpdate);
    const listening = (this.baseUrl ??= this.listen());
    try {
      const base = await listening;
      return { url: `${base}/cog-webhook/${token}`, close: () => this.unsubscribe(token) };
    } catch (err) {
      // The next prediction tries to listen again rather than inherit this failure.
      if (this.baseUrl === listening) this.baseUrl = undefined;
      this.subscribers.delete(token);
      throw err;
    }
  }

  private async unsubscribe(token: string): Promise<void> {
    if (!this.subscribers.delete(token) || this.subscribers.size > 0 || !this.server) return;
    const server = this.server;
    this.server = undefined;
    this.baseUrl = undefined;
    this.closing = new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    await this.closing;
    this.closing = undefined;
  }

  private async listen(): Promise<string> {
    const server = createServer((req, res) => {
      void this.receive(req)
        .catch(() => 400)
        .then((status) => res.writeHead(status, { 'content-type': 'application/json' }).end('{}'));
    });
    server.on('error', () => undefined);
    const listening = once(server, 'listening');
    server.listen(this.options.port, this.options.host);
    try {
      await listening;
    } catch (err) {
      throw new Error(`cannot listen on ${this.options.host}:${this.options.port}: ${(err as Error).message}`);
    }
    this.server = server;
    const { port } = server.address() as AddressInfo;
    // A wildcard bind is reachable on loopback at least; other hosts need `publicUrl`.
    const wildcard = this.options.host === '0.0.0.0' || this.options.host === '::';
    const host = wildcard
      ? '127.0.0.1'
      : this.options.host.includes(':')
        ? `[${this.options.host}]`
        : this.options.host;
    return (this.options.publicUrl ?? `http://${host}:${port}`).replace(/\/+$/, '');
  }

  private async receive(req: IncomingMessage): Promise<number> {
    const token = /^\/cog-webhook\/([0-9a-f]{32})$/.exec(req.url ?? '')?.[1];
    const subscriber = token ? this.subscribers.get(token) : undefined;
    if (req.method !== 'POST' || !subscriber) {
      req.resume();
      return 404;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end even when too large, so the answer still reaches Cog on a healthy connection.
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size <= MAX_WEBHOOK_BYTES) chunks.push(chunk);
    }
    if (size > MAX_WEBHOOK_BYTES) return 413;
    const prediction = parsePrediction(Buffer.concat(chunks).toString('utf8'));
    if (!prediction) return 400;
    subscriber(prediction);
    return 200;
  }
}
