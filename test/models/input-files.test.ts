import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EgressPolicy } from '../../src/egress/policy';
import { createInputFetcher, InputFetchError } from '../../src/models/input-files';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A loopback server whose behaviour each test sets, recording when a client hangs up early. */
let server: Server;
let baseUrl: string;
let handler: Handler;
let clientHungUp: Promise<void>;

beforeAll(async () => {
  server = createServer((req, res) => {
    clientHungUp = new Promise((resolve) => res.on('close', () => resolve()));
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

// The receivers here are on loopback, which inputs may only reach when allow-listed.
const egress = new EgressPolicy(['127.0.0.1/32']);
const fetchInput = createInputFetcher({ maxBytes: 1024, timeoutMs: 2_000, egress });
const noSignal = () => new AbortController().signal;

/** A loopback port nothing listens on (fetch refuses well-known ports such as 1 before connecting). */
async function unusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function fetchErrorOf(promise: Promise<unknown>): Promise<InputFetchError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputFetchError);
  return err as InputFetchError;
}

describe('input fetcher', () => {
  describe('data URIs', () => {
    it('decodes a base64 data URI with its media type', async () => {
      const result = await fetchInput('data:image/png;base64,AAEC/w==', noSignal());

      expect(result).toEqual({ data: Buffer.from([0, 1, 2, 255]), contentType: 'image/png' });
    });

    it('decodes a percent-encoded data URI, defaulting to text/plain', async () => {
      const result = await fetchInput('data:,hello%20w%C3%B6rld%FF', noSignal());

      expect(result.data).toEqual(Buffer.concat([Buffer.from('hello wörld'), Buffer.from([0xff])]));
      expect(result.contentType).toBe('text/plain;charset=US-ASCII');
    });

    it('rejects malformed base64 without echoing the payload', async () => {
      const err = await fetchErrorOf(fetchInput('data:image/png;base64,SECRET$$PAYLOAD', noSignal()));

      expect(err.message).toMatch(/not valid base64/);
      expect(err.message).not.toContain('SECRET');
    });

    it('rejects a data URI that decodes to more than maxBytes', async () => {
      const uri = `data:application/octet-stream;base64,${Buffer.alloc(1025).toString('base64')}`;

      const err = await fetchErrorOf(fetchInput(uri, noSignal()));

      expect(err.message).toBe('input from data URI is larger than the 1024 bytes allowed');
    });

    it('accepts a data URI of exactly maxBytes', async () => {
      const uri = `data:application/octet-stream;base64,${Buffer.alloc(1024, 7).toString('base64')}`;

      expect((await fetchInput(uri, noSignal())).data).toEqual(Buffer.alloc(1024, 7));
    });
  });

  describe('http(s) URLs', () => {
    it('fetches the body and content type from a real server', async () => {
      handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.end(Buffer.from([1, 2, 3]));
      };

      const result = await fetchInput(`${baseUrl}/cat.jpg?token=abc`, noSignal());

      expect(result).toEqual({ data: Buffer.from([1, 2, 3]), contentType: 'image/jpeg' });
    });

    it('follows redirects', async () => {
      handler = (req, res) => {
        if (req.url === '/old') {
          res.writeHead(302, { location: '/new' }).end();
        } else {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('moved');
        }
      };

      expect((await fetchInput(`${baseUrl}/old`, noSignal())).data.toString()).toBe('moved');
    });

    it('rejects a non-2xx answer, naming the host but not the path', async () => {
      handler = (_req, res) => res.writeHead(404).end('no such cat');

      const err = await fetchErrorOf(fetchInput(`${baseUrl}/secret-path/cat.png`, noSignal()));

      expect(err.message).toBe(`${baseUrl} answered HTTP 404`);
    });

    it('stops reading a streamed body as soon as it passes maxBytes', async () => {
      // No content-length and no end: only a limit enforced while streaming can finish this fetch.
      handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const timer = setInterval(() => res.write(Buffer.alloc(256)), 5);
        res.on('close', () => clearInterval(timer));
      };

      const err = await fetchErrorOf(fetchInput(`${baseUrl}/endless`, noSignal()));

      expect(err.message).toBe(`input from ${baseUrl} is larger than the 1024 bytes allowed`);
      await clientHungUp;
    });

    it('rejects a declared content-length above maxBytes before reading the body', async () => {
      handler = (_req, res) => {
        res.writeHead(200, { 'content-length': '4096' });
        res.write(Buffer.alloc(10));
      };

      const err = await fetchErrorOf(fetchInput(`${baseUrl}/big`, noSignal()));

      expect(err.message).toMatch(/larger than the 1024 bytes allowed/);
    });

    it('gives up on a server that does not answer within timeoutMs', async () => {
      handler = () => undefined;
      const impatient = createInputFetcher({ maxBytes: 1024, timeoutMs: 100, egress });

      const err = await fetchErrorOf(impatient(`${baseUrl}/slow`, noSignal()));

      expect(err.message).toBe(`${baseUrl} did not answer within 100 ms`);
    });

    it('reports an unreachable host by its error code', async () => {
      const port = await unusedPort();

      const err = await fetchErrorOf(fetchInput(`http://127.0.0.1:${port}/cat.png`, noSignal()));

      expect(err.message).toBe(`could not fetch from http://127.0.0.1:${port}: ECONNREFUSED`);
    });

    it('rejects with the abort reason, not an input error, when the caller cancels', async () => {
      handler = () => undefined;
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);

      await expect(fetchInput(`${baseUrl}/slow`, controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
    });
  });

  it('rejects schemes other than data and http(s)', async () => {
    const err = await fetchErrorOf(fetchInput('ftp://example.com/cat.png', noSignal()));

    expect(err.message).toBe('unsupported URL scheme "ftp:": expected an http(s) URL or a data URI');
  });
});
