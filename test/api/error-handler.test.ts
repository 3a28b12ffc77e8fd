import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import express from 'express';
import pino from 'pino';
import { errorHandler } from '../../src/api/error-handler';

/** The one error middleware: what a 5xx leaves in the operator's log. */
describe('error handler', () => {
  it('logs the path of a failed request without its query string, which carries webhook URLs and tokens', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const app = express();
    app.post('/acme/app', () => {
      throw new Error('boom');
    });
    app.use(errorHandler(pino(sink)));
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const secret = 'https://hooks.example.com/x?token=s3cret-webhook';
      const res = await fetch(
        `http://127.0.0.1:${port}/acme/app?fal_webhook=${encodeURIComponent(secret)}&token=s3cret-upload`,
        { method: 'POST' },
      );
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ detail: 'Internal server error' });
    } finally {
      server.close();
    }
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ msg: 'request failed', method: 'POST', path: '/acme/app' });
    expect(lines[0]).not.toContain('s3cret');
  });
});
