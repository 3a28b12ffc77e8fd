import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_CLI_TYPES } from '../../src/observability/search-attributes';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { startGatedBackend, type GatedBackend } from '../helpers/gated-backend';
import { startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { freePort } from '../helpers/python-env';
import { TEST_KEY, eventually, startStack, submitJson, waitCompleted, type Stack } from '../helpers/stack';

const run = promisify(execFile);
const MODEL = 'acme/echo';
const GATED = 'acme/gated';
const OPERATOR_TOKEN = `op-${randomBytes(12).toString('hex')}`;
// Markers that must never appear in what Temporal stores: a model input and a webhook URL's token.
const SECRET_INPUT = `secret-prompt-${randomBytes(8).toString('hex')}`;
const HOOK_TOKEN = `hooktoken${randomBytes(8).toString('hex')}`;
const ENCRYPTED = Buffer.from('binary/encrypted').toString('base64');

type JsonPayload = { metadata?: Record<string, string>; data?: string };

/** Every byte string and string in a history, as text: where plaintext would show if it were stored. */
function storedText(value: unknown, out: string[] = []): string[] {
  if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('latin1'));
  else if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => storedText(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => storedText(v, out));
  return out;
}

describe('payload encryption and the codec endpoint, with the Temporal Web UI pointed at it', () => {
  let temporal: DevServer;
  let stack: Stack;
  let model: LoopbackServer;
  let gated: GatedBackend;
  let hooks: LoopbackServer;
  let apiUrl: string;
  let rawClient: Client;
  let requestId: string;

  beforeAll(async () => {
    // The UI must know the codec endpoint when it starts, and the API must know Temporal: the API's port comes first.
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    temporal = await startDevServer({
      cliPath: process.env.TEST_TEMPORAL_CLI!,
      port: 0,
      uiPort: 0,
      uiCodecEndpoint: `${apiUrl}/codec`,
      searchAttributes: SEARCH_ATTRIBUTE_CLI_TYPES,
    });
    model = await startLoopbackServer((req, _raw, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.json }));
    });
    gated = await startGatedBackend();
    hooks = await startLoopbackServer((_req, _raw, res) => void res.writeHead(200).end());
    stack = await startStack({
      models: {
        models: [
          { id: MODEL, backend: { kind: 'http', url: model.url } },
          { id: GATED, backend: { kind: 'http', url: gated.url } },
        ],
      },
      env: {
        PORT: String(apiPort),
        TEMPORAL_ADDRESS: temporal.address,
        PAYLOAD_ENCRYPTION_KEYS: `k2:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`,
        CODEC_AUTH_TOKENS: `other-operator,${OPERATOR_TOKEN}`,
        CODEC_CORS_ORIGINS: temporal.uiUrl!,
      },
    });
    expect(stack.url).toBe(apiUrl);
    // What anyone with access to Temporal (UI, CLI, database) sees: a client without our codecs.
    rawClient = new Client({ connection: await Connection.connect({ address: temporal.address }) });

    const webhook = `${hooks.url}/hook?token=${HOOK_TOKEN}`;
    ({ request_id: requestId } = await submitJson(stack, `/${MODEL}?fal_webhook=${encodeURIComponent(webhook)}`, {
      prompt: SECRET_INPUT,
    }));
    await waitCompleted(stack, MODEL, requestId);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    await rawClient?.connection.close();
    await model?.close();
    await gated?.close();
    await hooks?.close();
    await temporal?.stop();
  });

  it('the request works end to end: the model and the webhook receiver get plaintext, the client its result', async () => {
    expect(model.requests[0]?.json).toEqual({ prompt: SECRET_INPUT });
    const delivered = await hooks.nth(1);
    expect(delivered.url).toBe(`/hook?token=${HOOK_TOKEN}`);
    expect(JSON.stringify(delivered.json)).toContain(SECRET_INPUT);
    const result = await stack.api(`/${MODEL}/requests/${requestId}`);
    expect(await result.json()).toEqual({ echo: { prompt: SECRET_INPUT } });
  });

  it('the delivery log and a redelivery read the encrypted memo and history through the codecs', async () => {
    // The first attempt is recorded once its activity has returned, after the receiver got it: wait for the record.
    const log = await eventually(async () => {
      const res = await stack.api(`/${MODEL}/requests/${requestId}/webhook`);
      const body = (await res.json()) as { url?: string; attempts?: unknown[] };
      return res.status === 200 && (body.attempts?.length ?? 0) > 0 ? body : undefined;
    });
    expect(log.url).toBe(`${hooks.url}/hook?token=${HOOK_TOKEN}`);
    const redeliver = await stack.api(`/${MODEL}/requests/${requestId}/webhook/redeliver`, { method: 'POST' });
    expect(redeliver.status).toBe(202);
    const again = await hooks.nth(2);
    expect(again.url).toBe(`/hook?token=${HOOK_TOKEN}`);
    expect(JSON.stringify(again.json)).toContain(SECRET_INPUT);
  });

  it('status polls still show the run logs, which travel encrypted in activity heartbeats', async () => {
    const { request_id } = await submitJson(stack, `/${GATED}`, { prompt: SECRET_INPUT });
    const logs = await eventually(async () => {
      const status = (await (await stack.api(`/${GATED}/requests/${request_id}/status?logs=1`)).json()) as {
        status: string;
        logs?: { message: string }[];
      };
      const lines = (status.logs ?? []).map((l) => l.message);
      return status.status === 'IN_PROGRESS' && lines.some((l) => l.startsWith('POST')) ? lines : undefined;
    });
    expect(logs.join('\n')).toContain(gated.url);
    gated.release({ done: true });
    await waitCompleted(stack, GATED, request_id);
  });

  it('stores only ciphertext: no history of this task queue holds the input or the webhook token', async () => {
    // The webhook delivery runs in a workflow of its own; wait until it has closed so its history is complete.
    const query = `TaskQueue = "${stack.config.temporal.taskQueue}"`;
    // Raw service calls: the SDK's own list and describe would try (and fail) to decode the encrypted memos.
    const running = proto.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING;
    await eventually(async () => {
      const { workflowExecutionInfo } = await rawClient.workflowService.describeWorkflowExecution({
        namespace: 'default',
        execution: { workflowId: requestId },
      });
      return workflowExecutionInfo?.status !== running ? true : undefined;
    });
    // The request, and whatever else ran on the task queue (admission queue, file sweeper).
    const { executions } = await rawClient.workflowService.listWorkflowExecutions({ namespace: 'default', query });
    expect(executions.map((e) => e.execution?.workflowId)).toContain(requestId);
    for (const execution of executions) {
      const { workflowId, runId } = execution.execution!;
      const history = await rawClient.workflow.getHandle(workflowId!, runId!).fetchHistory();
      const description = await rawClient.workflowService.describeWorkflowExecution({
        namespace: 'default',
        execution: { workflowId, runId },
      });
      // Memos (the delivery log names the webhook URL) go through the codecs too.
      const text = storedText([history, description, execution]).join('\n');
      expect(text).not.toContain(SECRET_INPUT);
      expect(text).not.toContain(HOOK_TOKEN);
      expect(text).toContain('binary/encrypted');
    }
  });

  it("the CLI's `workflow show` sees ciphertext, and plaintext only through the codec endpoint with an operator token", async () => {
    const cli = process.env.TEST_TEMPORAL_CLI!;
    const show = ['workflow', 'show', '--address', temporal.address, '-w', requestId, '--output', 'json'];
    const plain = await run(cli, show, { maxBuffer: 16 * 1024 * 1024 });
    expect(plain.stdout).toContain(ENCRYPTED);
    expect(plain.stdout).not.toContain(SECRET_INPUT);
    const decoded = await run(
      cli,
      [...show, '--codec-endpoint', `${apiUrl}/codec`, '--codec-auth', `Bearer ${OPERATOR_TOKEN}`],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    expect(decoded.stdout).not.toContain(ENCRYPTED);
    // JSON output keeps payload data in base64.
    const data = [...decoded.stdout.matchAll(/"data": "([^"]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString());
    expect(data.join('\n')).toContain(SECRET_INPUT);
    expect(data.join('\n')).toContain(HOOK_TOKEN);
  });

  it('POST /codec/decode decodes for an operator token and answers 401 to anyone else, tenants included', async () => {
    const history = await rawClient.workflow.getHandle(requestId).fetchHistory();
    const stored = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads!;
    const body = JSON.stringify({
      payloads: stored.map((p) => ({
        metadata: Object.fromEntries(
          Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
        data: Buffer.from(p.data!).toString('base64'),
      })),
    });
    const decode = (authorization?: string) =>
      fetch(`${apiUrl}/codec/decode`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-namespace': 'default',
          ...(authorization ? { authorization } : {}),
        },
        body,
      });

    const ok = await decode(`Bearer ${OPERATOR_TOKEN}`);
    expect(ok.status).toBe(200);
    const { payloads } = (await ok.json()) as { payloads: JsonPayload[] };
    expect(Buffer.from(payloads[0]!.metadata!.encoding!, 'base64').toString()).toBe('json/plain');
    const input = JSON.parse(Buffer.from(payloads[0]!.data!, 'base64').toString()) as Record<string, unknown>;
    expect(JSON.stringify(input)).toContain(SECRET_INPUT);
    expect(JSON.stringify(input)).toContain(HOOK_TOKEN);

    for (const authorization of [undefined, `Key ${TEST_KEY}`, 'Bearer not-a-token', `Basic ${OPERATOR_TOKEN}`]) {
      const refused = await decode(authorization);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="codec"');
      expect(await refused.text()).not.toContain(SECRET_INPUT);
    }
  });

  it('answers a malformed body or an undecryptable payload with 400, as the codec protocol says', async () => {
    const post = (body: string) =>
      fetch(`${apiUrl}/codec/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${OPERATOR_TOKEN}` },
        body,
      });
    expect((await post('{"payloads": [{"data": "not base64!"}]}')).status).toBe(400);
    expect((await post('{"payloads": ')).status).toBe(400);
    // An empty list is left out in protobuf JSON (a signal without arguments): nothing to convert, not an error.
    const empty = await post('{}');
    expect(empty.status).toBe(200);
    expect(await empty.json()).toEqual({ payloads: [] });
    const forged = {
      metadata: { encoding: ENCRYPTED, 'encryption-key-id': Buffer.from('k1').toString('base64') },
      data: randomBytes(64).toString('base64'),
    };
    const refused = await post(JSON.stringify({ payloads: [forged] }));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/failed authentication with key "k1"/);
  });

  it('POST /codec/encode is the inverse of decode', async () => {
    const original = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: 'eyJhIjoxfQ==' };
    const call = async (path: string, payloads: JsonPayload[]) => {
      const res = await fetch(`${apiUrl}/codec/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${OPERATOR_TOKEN}` },
        body: JSON.stringify({ payloads }),
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { payloads: JsonPayload[] }).payloads;
    };
    const encoded = await call('encode', [original]);
    expect(encoded[0]!.metadata!.encoding).toBe(ENCRYPTED);
    expect(Buffer.from(encoded[0]!.metadata!['encryption-key-id']!, 'base64').toString()).toBe('k2');
    expect(await call('decode', encoded)).toEqual([original]);
  });

  it("lets the UI's origin call it from a browser (CORS preflight without a token), and no other origin", async () => {
    const uiOrigin = new URL(temporal.uiUrl!).origin;
    const preflight = (origin: string) =>
      fetch(`${apiUrl}/codec/decode`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace,authorization',
        },
      });
    const allowed = await preflight(uiOrigin);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    const other = await preflight('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('the Temporal Web UI reports our codec endpoint in its settings', async () => {
    const res = await fetch(`${temporal.uiUrl}/api/v1/settings`);
    expect(res.status).toBe(200);
    const settings = (await res.json()) as { Codec?: { Endpoint?: string } };
    expect(settings.Codec?.Endpoint).toBe(`${apiUrl}/codec`);
  });
});
