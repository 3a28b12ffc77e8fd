import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

export interface Proxy {
  /** `127.0.0.1:port`, as TEMPORAL_ADDRESS takes it. */
  address: string;
  /** Drops every connection and stops accepting: Temporal "goes away". */
  close(): Promise<void>;
}

export interface TlsProxy extends Proxy {
  /** Client certificates presented on accepted connections (subject CN). */
  clients: string[];
  /** TLS handshakes that failed, with the reason. */
  refused: string[];
}

function splice(a: Socket, b: Socket, open: Set<Socket>): void {
  open.add(a).add(b);
  a.pipe(b).pipe(a);
  for (const s of [a, b]) {
    s.on('error', () => {
      a.destroy();
      b.destroy();
    });
    s.on('close', () => {
      open.delete(s);
      (s === a ? b : a).destroy();
    });
  }
}

async function listen(server: Server, open: Set<Socket>, port = 0): Promise<Proxy> {
  server.listen(port, '127.0.0.1');
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  const bound = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

function upstream(target: string): Socket {
  const [host, port] = target.split(':');
  return connect(Number(port), host);
}

/** A plain TCP proxy to the Temporal frontend at `target`, on `port` (0 = a free one). */
export async function startTcpProxy(target: string, port = 0): Promise<Proxy> {
  const open = new Set<Socket>();
  const server = createServer((socket) => splice(socket, upstream(target), open));
  return listen(server, open, port);
}

/**
 * Terminates TLS in front of the (plaintext) dev server, requiring a client certificate signed by
 * `certs.ca` when `mutual`: the dev server has no TLS options of its own, so this is how a real
 * handshake, certificate check and ALPN `h2` negotiation are tested against a real frontend.
 */
export async function startTlsProxy(target: string, certs: TestCerts, mutual = true): Promise<TlsProxy> {
  const open = new Set<Socket>();
  const clients: string[] = [];
  const refused: string[] = [];
  const server = createTlsServer(
    {
      key: readFileSync(certs.serverKey),
      cert: readFileSync(certs.serverCert),
      ca: readFileSync(certs.ca),
      requestCert: mutual,
      rejectUnauthorized: mutual,
      ALPNProtocols: ['h2'],
    },
    (socket: TLSSocket) => {
      clients.push(String(socket.getPeerCertificate()?.subject?.CN ?? ''));
      splice(socket, upstream(target), open);
    },
  );
  server.on('tlsClientError', (err) => refused.push(err.message));
  const proxy = await listen(server, open);
  return { ...proxy, clients, refused };
}

export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: a server checked against it is not trusted. */
  otherCa: string;
}

/** A throwaway CA, a server certificate for `temporal.test` / 127.0.0.1 and a client certificate, made with openssl. */
export function makeTestCerts(parent: string): TestCerts {
  const dir = mkdtempSync(join(parent, 'certs-'));
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', ...ecKey, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
  }
  const leaf = (name: string, ext: string) => {
    writeFileSync(path(`${name}.ext`), ext);
    openssl('req', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  leaf('temporal.test', 'subjectAltName=DNS:temporal.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('worker', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: path('ca.pem'),
    serverCert: path('temporal.test.pem'),
    serverKey: path('temporal.test.key'),
    clientCert: path('worker.pem'),
    clientKey: path('worker.key'),
    otherCa: path('other-ca.pem'),
  };
}
