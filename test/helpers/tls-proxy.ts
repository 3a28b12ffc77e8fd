import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files. */
export interface TestCertificates {
  dir: string;
  /** The CA certificate: what clients trust (`SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`). */
  caPath: string;
  certPath: string;
  keyPath: string;
}

/**
 * Makes a CA and a server certificate with the `openssl` CLI, valid for a day. The extensions are the
 * ones strict verifiers (Python 3.13's `VERIFY_X509_STRICT`) insist on: CA basic constraints and key
 * usage, key identifiers, and a subject alternative name for every address the test connects to.
 */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(process.env.TEST_TMP_DIR ?? tmpdir(), 'tls-'));
  const path = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await run('openssl', [
    'req', '-x509', ...ec, '-keyout', path('ca.key'), '-out', path('ca.pem'), '-days', '1',
    '-subj', '/CN=fal-queue throwaway test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]); // prettier-ignore
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    path('server.key'),
    '-out',
    path('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(
    path('server.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid,issuer',
    ].join('\n'),
  );
  await run('openssl', [
    'x509', '-req', '-in', path('server.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'),
    '-CAcreateserial', '-out', path('server.pem'), '-days', '1', '-extfile', path('server.ext'),
  ]); // prettier-ignore
  return { dir, caPath: path('ca.pem'), certPath: path('server.pem'), keyPath: path('server.key') };
}

/** What the proxy forwarded, in order. */
export interface ProxiedRequest {
  method: string;
  url: string;
  status?: number;
}

export interface TlsProxy {
  /** `https://127.0.0.1:<port>`. */
  url: string;
  /** `127.0.0.1:<port>`, as fal's clients take hosts. */
  host: string;
  requests: ProxiedRequest[];
  close(): Promise<void>;
}

/**
 * A TLS-terminating reverse proxy on 127.0.0.1, as production puts in front of the API: it forwards to
 * `target` over plain HTTP, keeps the client's `Host`, and says what it terminated in `X-Forwarded-Proto`,
 * `X-Forwarded-Host` and `X-Forwarded-For`. Bodies stream both ways, so status streams (SSE) pass through.
 */
export async function startTlsProxy(certs: TestCertificates, target: string): Promise<TlsProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server: Server = createServer(
    { key: await readFile(certs.keyPath), cert: await readFile(certs.certPath) },
    (req, res) => {
      const record: ProxiedRequest = { method: req.method ?? '', url: req.url ?? '' };
      requests.push(record);
      const forwarded = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: {
            ...req.headers,
            'x-forwarded-proto': 'https',
            'x-forwarded-host': req.headers.host ?? '',
            'x-forwarded-for': req.socket.remoteAddress ?? '',
          },
        },
        (answer) => {
          record.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forwarded.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      // A client that hangs up mid-request (a cancelled status stream) ends the upstream request too.
      res.on('close', () => forwarded.destroy());
      req.pipe(forwarded);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
