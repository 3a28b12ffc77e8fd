import { join } from 'node:path';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { PROJECT_ROOT, ensurePythonEnv, freePort, startProcess, type PythonEnv } from '../helpers/python-env';
import { TEST_KEY, startStack, type Stack } from '../helpers/stack';
import { makeTestCertificates, startTlsProxy, type TestCertificates, type TlsProxy } from '../helpers/tls-proxy';

/** fal's official Python client and its HTTP stack, pinned; docs/api.md names the same version. */
const FAL_CLIENT_PACKAGES = ['fal-client==1.0.3', 'httpx==0.28.1', 'httpx-sse==0.4.3'];
const ECHO = 'acme/echo';
const GATED = 'acme/gated';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Status = { kind: string; logs?: string[]; error?: string | null; error_type?: string | null };
type HttpErrorOut = {
  class: string;
  is_fal_client_http_error: boolean;
  status_code: number;
  message: string;
  error_type: string | null;
};
interface Output {
  submit: { request_id: string; status_url: string; response_url: string; cancel_url: string };
  status: Status;
  iter_events: Status[];
  get: unknown;
  subscribe: unknown;
  subscribe_updates: Status[];
  run: unknown;
  cancel_status: Status;
  cancel_get: HttpErrorOut | string;
  unprocessable: HttpErrorOut | string;
}

describe("fal's official Python client, unmodified, behind a TLS proxy with a throwaway CA", () => {
  let python: PythonEnv;
  let certs: TestCertificates;
  let proxy: TlsProxy;
  let echo: LoopbackServer;
  let gated: GatedBackend;
  let stack: Stack;

  beforeAll(async () => {
    [python, certs] = await Promise.all([
      ensurePythonEnv({ dir: join(PROJECT_ROOT, '.venv', 'fal-client'), packages: FAL_CLIENT_PACKAGES }),
      makeTestCertificates(),
    ]);
    echo = await startLoopbackServer((req, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.json }));
    });
    gated = await startGatedBackend();
    // The proxy forwards to the API's port, which must be known before the API starts.
    const apiPort = await freePort();
    proxy = await startTlsProxy(certs, `http://127.0.0.1:${apiPort}`);
    stack = await startStack({
      models: {
        models: [
          { id: ECHO, backend: { kind: 'http', url: echo.url } },
          { id: GATED, backend: { kind: 'http', url: gated.url }, concurrency: 2 },
        ],
      },
      // The API builds the URLs it hands out from the proxy's X-Forwarded-Proto/Host, as behind any TLS proxy.
      env: { PORT: String(apiPort), TRUST_PROXY: 'loopback' },
    });
  }, 15 * 60_000);

  afterAll(async () => {
    await stack?.stop();
    await proxy?.close();
    await echo?.close();
    await gated?.close();
  });

  it('submit, status, iter_events, get, subscribe with queue updates, run, cancel and a 422 all work over https', async () => {
    const script = startProcess(python.python, [join(__dirname, 'python', 'fal_client_calls.py'), ECHO, GATED], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        FAL_KEY: TEST_KEY,
        FAL_QUEUE_RUN_HOST: proxy.host,
        FAL_RUN_HOST: `${proxy.host}/run`,
        SSL_CERT_FILE: certs.caPath,
        // Loopback only, whatever proxies the machine's environment names.
        NO_PROXY: '*',
        PYTHONUNBUFFERED: '1',
      },
    });
    // The waits end before the test's own timeout, so a failure shows the script's output (its traceback).
    try {
      await script.waitFor(/^EVENT gated-in-progress$/m, 75_000);
      gated.release({ released: true });
      await script.waitFor(/^RESULT .*$/m, 75_000);
    } finally {
      await script.stop();
    }
    const out = JSON.parse(/^RESULT (.*)$/m.exec(script.output())![1]!) as Output;

    // The URLs we handed out point at the proxy, over https.
    const id = out.submit.request_id;
    expect(id).toMatch(UUID);
    expect(out.submit).toEqual({
      request_id: id,
      response_url: `${proxy.url}/${ECHO}/requests/${id}`,
      status_url: `${proxy.url}/${ECHO}/requests/${id}/status`,
      cancel_url: `${proxy.url}/${ECHO}/requests/${id}/cancel`,
    });
    expect(['Queued', 'InProgress', 'Completed']).toContain(out.status.kind);
    expect(out.iter_events.at(-1)).toMatchObject({ kind: 'Completed', error: null });
    expect(out.iter_events.at(-1)!.logs!.join('\n')).toMatch(/^POST /m);
    expect(out.get).toEqual({ echo: { prompt: 'submitted' } });

    expect(out.subscribe).toEqual({ released: true });
    const kinds = out.subscribe_updates.map((u) => u.kind);
    expect(kinds).toContain('InProgress');
    expect(kinds.at(-1)).toBe('Completed');
    // Logs arrive with the run's heartbeats: the first in-progress update may have none yet, a later one has them.
    const inProgressLogs = out.subscribe_updates.filter((u) => u.kind === 'InProgress').flatMap((u) => u.logs ?? []);
    expect(inProgressLogs.join('\n')).toMatch(/^POST /m);

    expect(out.run).toEqual({ echo: { prompt: 'ran' } });

    expect(out.cancel_status).toMatchObject({ kind: 'Completed', error_type: 'cancelled' });
    expect(out.cancel_get).toMatchObject({ is_fal_client_http_error: true, status_code: 400, error_type: 'cancelled' });

    expect(out.unprocessable).toMatchObject({ class: 'FalClientHTTPError', status_code: 422 });
    expect((out.unprocessable as HttpErrorOut).message).toMatch(/x-fal-queue-priority/);

    // Every call went through the TLS proxy: submit, polls, results, the /run form and the cancel.
    const seen = proxy.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`);
    expect(seen).toEqual(
      expect.arrayContaining([
        `POST /${ECHO}`,
        `GET /${ECHO}/requests/${id}/status`,
        `GET /${ECHO}/requests/${id}`,
        `POST /${GATED}`,
        `POST /run/${ECHO}`,
        expect.stringMatching(new RegExp(`^PUT /${GATED}/requests/[0-9a-f-]+/cancel$`)),
      ]),
    );
  }, 180_000);
});
