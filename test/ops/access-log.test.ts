import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import express from 'express';
import pino from 'pino';
import { requestLogging } from '../../src/observability/http-logging';

/** The API's access log on a real loopback server: one line per request, with what the operator needs and no more. */
describe('access log', () => {
  const lines: Record<string, unknown>[] = [];
  let server: Server;
  let base: string;
  let releaseSlow: () => void = () => undefined;

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    const app = express();
    app.use(requestLogging(pino({ level: 'info' }, sink)));
    app.get('/healthz', (_req, res) => void res.json({ ok: true }));
    app.post('/acme/model', (_req, res) => void res.json({ request_id: 'req-1', status: 'IN_QUEUE' }));
    app.get('/acme/model/requests/:id/status', (_req, res) => void res.status(500).json({ detail: 'boom' }));
    app.get('/slow', (_req, res) => {
      releaseSlow = () => res.json({ late: true });
    });
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const lineFor = async (id: string) => {
    for (let i = 0; i < 100; i++) {
      const line = lines.find((l) => (l.req as { id?: string }).id === id);
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no access line for ${id}`);
  };

  it('logs a submit with its request_id, path without the query, status and duration, echoing x-request-id', async () => {
    const res = await fetch(`${base}/acme/model?fal_webhook=https%3A%2F%2Fsecret.example%2Fhook`, {
      method: 'POST',
      headers: { 'x-request-id': 'trace-1', authorization: 'Key id:secret' },
    });
    expect(res.headers.get('x-request-id')).toBe('trace-1');
    const line = await lineFor('trace-1');
    expect(line).toMatchObject({
      level: 30,
      msg: 'request completed',
      req: { id: 'trace-1', method: 'POST', path: '/acme/model' },
      res: { statusCode: 200 },
      request_id: 'req-1',
    });
    expect(typeof line.responseTime).toBe('number');
    expect(JSON.stringify(line)).not.toMatch(/secret/);
  });

  it('logs a 5xx at error level, with the request_id from the path', async () => {
    const res = await fetch(`${base}/acme/model/requests/abc%2D1/status`, { headers: { 'x-request-id': 'trace-2' } });
    expect(res.status).toBe(500);
    expect(await lineFor('trace-2')).toMatchObject({
      level: 50,
      msg: 'request errored',
      res: { statusCode: 500 },
      request_id: 'abc-1',
    });
  });

  it('gives a request without a usable x-request-id a new one', async () => {
    const res = await fetch(`${base}/acme/model`, { method: 'POST', headers: { 'x-request-id': 'not ok!' } });
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await lineFor(id!)).toMatchObject({ msg: 'request completed' });
  });

  it('logs a request whose client went away before the answer as aborted', async () => {
    const aborted = new AbortController();
    const call = fetch(`${base}/slow`, { headers: { 'x-request-id': 'trace-3' }, signal: aborted.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    aborted.abort();
    await expect(call).rejects.toThrow();
    expect(await lineFor('trace-3')).toMatchObject({ msg: 'request aborted' });
    releaseSlow();
  });

  it('writes no line for probes, but still echoes their id', async () => {
    const res = await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'probe-1' } });
    expect(res.headers.get('x-request-id')).toBe('probe-1');
    await fetch(`${base}/acme/model`, { method: 'POST', headers: { 'x-request-id': 'after-probe' } });
    await lineFor('after-probe');
    expect(lines.some((l) => (l.req as { id?: string }).id === 'probe-1')).toBe(false);
  });
});
