/** TCP helpers of the dev server launcher, the readiness probe, the tests and the bench: addresses and free ports. */
import { createConnection, createServer, type AddressInfo } from 'node:net';

/** Temporal's default frontend port. */
export const DEFAULT_TEMPORAL_PORT = 7233;

/** True when something accepts TCP connections at `host:port` within `timeoutMs`. */
export function acceptsTcp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host, port });
    const finish = (accepted: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      done(accepted);
    };
    const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** Splits `host:port` or `[v6]:port`; a missing port means Temporal's default, as in the SDK. */
export function parseAddress(address: string): [string, number] {
  const match = /^\[(.+)\](?::(\d+))?$/.exec(address) ?? /^([^:]+)(?::(\d+))?$/.exec(address);
  if (!match) throw new Error(`Cannot parse Temporal address ${JSON.stringify(address)}: expected host:port`);
  return [match[1]!, match[2] ? Number(match[2]) : DEFAULT_TEMPORAL_PORT];
}

/** Returns a TCP port that is free on `host` right now (bind to port 0, read it, close). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await findFreePorts(host, 1);
  return port!;
}

/** Holds all listeners open until every port is read, so one call never returns the same port twice. */
export async function findFreePorts(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolveServer, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, host, () => resolveServer(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}

/** A wildcard bind address is not something a client can dial; use loopback instead. */
export function connectHost(ip: string): string {
  if (ip === '0.0.0.0' || ip === '') return '127.0.0.1';
  if (ip === '::') return '::1';
  return ip;
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// Duck-typed rather than `instanceof Error`: under jest, errors can come from another realm.
export function errorMessage(err: unknown): string {
  return typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);
}
