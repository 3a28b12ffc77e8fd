import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { ModelRegistry } from '../../src/models/registry';
import { startServer } from '../../src/server';
import { connectToTemporal } from '../../src/temporal/connection';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, waitCompleted } from '../helpers/stack';
import { makeTestCerts, startTcpProxy, startTlsProxy, type TestCerts } from './temporal-proxies';

const MODELS = { models: [{ id: 'acme/echo', backend: { kind: 'http', url: 'http://127.0.0.1:1/unused' } }] };
const quiet = pino({ level: 'silent' });
const baseEnv = () => ({
  HOST: '127.0.0.1',
  PORT: '0',
  TEMPORAL_TASK_QUEUE: `test-${randomUUID()}`,
  DATA_DIR: process.env.TEST_TMP_DIR!,
  API_KEYS: 'k:s',
});

describe('connecting to an existing Temporal cluster', () => {
  const devServer = process.env.TEST_TEMPORAL_ADDRESS!;
  let certs: TestCerts;
  let backend: LoopbackServer;

  beforeAll(async () => {
    certs = makeTestCerts(process.env.TEST_TMP_DIR!);
    backend = await startLoopbackServer(respondJson(200, { ok: true }));
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('runs a request end to end over mTLS: API and workers present the configured client certificate', async () => {
    const proxy = await startTlsProxy(devServer, certs);
    const stack = await startStack({
      models: { models: [{ id: 'acme/tls', backend: { kind: 'http', url: backend.url } }] },
      env: {
        TEMPORAL_ADDRESS: proxy.address,
        TEMPORAL_TLS_CA_PATH: certs.ca,
        TEMPORAL_TLS_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_KEY_PATH: certs.clientKey,
        TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      },
    });
    try {
      const { request_id } = await submitJson(stack, '/acme/tls', { hello: 'tls' });
      const done = await waitCompleted(stack, 'acme/tls', request_id);
      expect(done.error_type).toBeUndefined();
      // Both the API (grpc-js) and the workers (Rust core) came in through the TLS listener with our certificate.
      expect(proxy.clients.length).toBeGreaterThanOrEqual(2);
      expect(new Set(proxy.clients)).toEqual(new Set(['worker']));
    } finally {
      await stack.stop();
      await proxy.close();
    }
  });

  it('fails with a message naming the address and the TLS settings when the handshake fails', async () => {
    const proxy = await startTlsProxy(devServer, certs);
    // What startServer and startWorkers do, with a short connect timeout: the default retries for 10 s.
    const connect = (env: Record<string, string>) =>
      connectToTemporal(loadConfig({ ...baseEnv(), TEMPORAL_ADDRESS: proxy.address, ...env }).temporal, (options) =>
        Connection.connect({ ...options, connectTimeout: 1_500 }),
      );
    try {
      // No client certificate: the server's handshake refuses us.
      const refused = connect({ TEMPORAL_TLS_CA_PATH: certs.ca, TEMPORAL_TLS_SERVER_NAME: 'temporal.test' });
      await expect(refused).rejects.toThrow(
        `Cannot connect to Temporal at ${proxy.address} (TEMPORAL_ADDRESS), over TLS`,
      );
      await expect(refused).rejects.toThrow('no client certificate');
      expect(proxy.refused.length).toBeGreaterThan(0);

      // A CA that did not sign the server's certificate: we refuse the server.
      const untrusted = connect({
        TEMPORAL_TLS_CA_PATH: certs.otherCa,
        TEMPORAL_TLS_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_KEY_PATH: certs.clientKey,
        TEMPORAL_TLS_SERVER_NAME: 'temporal.test',
      });
      await expect(untrusted).rejects.toThrow(`CA TEMPORAL_TLS_CA_PATH=${certs.otherCa}`);

      // The same certificates over plaintext: the server only speaks TLS.
      await expect(connect({})).rejects.toThrow('without TLS');
    } finally {
      await proxy.close();
    }
  });

  it('refuses at start a TLS file that is missing or not PEM, naming the variable', () => {
    expect(() =>
      loadConfig({
        ...baseEnv(),
        TEMPORAL_TLS_CERT_PATH: '/nowhere/client.pem',
        TEMPORAL_TLS_KEY_PATH: certs.clientKey,
      }),
    ).toThrow(/TEMPORAL_TLS_CERT_PATH: cannot read \/nowhere\/client\.pem/);
    expect(() => loadConfig({ ...baseEnv(), TEMPORAL_TLS_CA_PATH: `${certs.dir}/worker.ext` })).toThrow(
      /TEMPORAL_TLS_CA_PATH: .*worker\.ext is not a PEM file/,
    );
    expect(() => loadConfig({ ...baseEnv(), TEMPORAL_TLS_SERVER_NAME: 'temporal.test' })).toThrow(
      /TEMPORAL_TLS_SERVER_NAME only applies over TLS/,
    );
    expect(() => loadConfig({ ...baseEnv(), TEMPORAL_ADDRESS: 'https://temporal.example:7233' })).toThrow(
      /TEMPORAL_ADDRESS: must be host:port without a scheme/,
    );
  });

  it('reports /readyz 503 while Temporal is unreachable and 200 again once it is back, /healthz 200 throughout', async () => {
    let proxy = await startTcpProxy(devServer);
    const port = Number(proxy.address.split(':')[1]);
    const stack = await startStack({ models: MODELS, workers: false, env: { TEMPORAL_ADDRESS: proxy.address } });
    try {
      expect(await (await fetch(`${stack.url}/readyz`)).json()).toEqual({ status: 'ok' });
      await proxy.close();
      const down = await eventually(
        async () => {
          const res = await fetch(`${stack.url}/readyz`);
          return res.status === 503 ? res : undefined;
        },
        15_000,
        200,
      );
      expect(await down.json()).toMatchObject({ status: 'unavailable', detail: expect.stringContaining('Temporal') });
      expect((await fetch(`${stack.url}/healthz`)).status).toBe(200);

      // Temporal comes back on the same address.
      proxy = await eventually(() => startTcpProxy(devServer, port).catch(() => undefined), 5_000);
      await eventually(
        async () => ((await fetch(`${stack.url}/readyz`)).status === 200 ? true : undefined),
        20_000,
        250,
      );
    } finally {
      await stack.stop();
      await proxy.close();
    }
  });

  it('refuses to start against a namespace without our search attributes, printing the commands that add them', async () => {
    const namespace = `no-attrs-${randomUUID().slice(0, 8)}`;
    const connection = await Connection.connect({ address: devServer });
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs('1 day'),
      });
      await eventually(async () =>
        connection.workflowService.describeNamespace({ namespace }).then(
          () => true,
          () => undefined,
        ),
      );
      const config = loadConfig({ ...baseEnv(), TEMPORAL_ADDRESS: devServer, TEMPORAL_NAMESPACE: namespace });
      const start = startServer(config, ModelRegistry.fromObject(MODELS), quiet);
      await expect(start).rejects.toThrow(`Temporal namespace "${namespace}" lacks the search attributes`);
      await expect(start).rejects.toThrow(
        `temporal operator search-attribute create --namespace ${namespace} --name FalModelId --type Keyword`,
      );
      await expect(start).rejects.toThrow('TEMPORAL_SEARCH_ATTRIBUTES=false');

      // Opting out runs without them.
      const optOut = loadConfig({
        ...baseEnv(),
        TEMPORAL_ADDRESS: devServer,
        TEMPORAL_NAMESPACE: namespace,
        TEMPORAL_SEARCH_ATTRIBUTES: 'false',
      });
      const server = await startServer(optOut, ModelRegistry.fromObject(MODELS), quiet);
      await server.stop();
    } finally {
      await connection.close();
    }
  });
});
