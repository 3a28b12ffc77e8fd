import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';
import { eventually, startStack, submitJson, TEST_KEY, type Stack } from '../helpers/stack';

/** What a hostile or careless client meets at the HTTP edge (issue 16). */
const APP = 'acme/edge';
const json = { 'content-type': 'application/json' };

let backend: LoopbackServer;
let receiver: LoopbackServer;
let stack: Stack;

beforeAll(async () => {
  backend = await startLoopbackServer(respondJson(200, { ok: true }));
  receiver = await startLoopbackServer(respondJson(200, {}));
  stack = await startStack({
    models: { models: [{ id: APP, backend: { kind: 'http', url: backend.url } }] },
    env: {
      TRUST_PROXY: 'loopback',
      REDELIVER_RATE_PER_REQUEST: '2/1h',
      REDELIVER_RATE_PER_OWNER: '3/1h',
    },
  });
});
afterAll(async () => {
  await stack?.stop();
  await backend?.close();
  await receiver?.close();
});

/** Reserves an upload of `contentType`, PUTs `bytes`, and answers the served file's response. */
async function uploadAndFetch(contentType: string, bytes: string, fileName = 'f'): Promise<Response> {
  const initiate = await stack.api('/storage/upload/initiate', {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ content_type: contentType, file_name: fileName }),
  });
  expect(initiate.status).toBe(200);
  const { upload_url, file_url } = (await initiate.json()) as { upload_url: string; file_url: string };
  const put = await fetch(upload_url, { method: 'PUT', body: bytes });
  expect(put.status).toBe(200);
  return fetch(file_url);
}

describe('files are served so that they cannot run on the API origin', () => {
  it('serves HTML, SVG and script as sandboxed, unsniffed attachments', async () => {
    for (const type of ['text/html', 'image/svg+xml', 'application/xml', 'text/javascript']) {
      const res = await uploadAndFetch(type, '<svg onload="alert(1)"><script>alert(1)</script></svg>', 'x.html');
      expect({
        type,
        contentType: res.headers.get('content-type'),
        disposition: res.headers.get('content-disposition'),
        nosniff: res.headers.get('x-content-type-options'),
        csp: res.headers.get('content-security-policy'),
      }).toEqual({
        type,
        contentType: type,
        disposition: 'attachment',
        nosniff: 'nosniff',
        csp: expect.stringMatching(/default-src 'none'.*sandbox/),
      });
      await res.arrayBuffer();
    }
  });

  it('shows plain images, audio and video inline, still sandboxed and unsniffed', async () => {
    for (const type of ['image/png', 'audio/mpeg', 'video/mp4']) {
      const res = await uploadAndFetch(type, 'bytes');
      expect([type, res.headers.get('content-disposition'), res.headers.get('x-content-type-options')]).toEqual([
        type,
        'inline',
        'nosniff',
      ]);
      expect(res.headers.get('content-security-policy')).toContain('sandbox');
      await res.arrayBuffer();
    }
  });

  it('refuses an upload content_type that is not a MIME type a header can carry, with a 422', async () => {
    for (const contentType of ['text/html\r\nx-evil: 1', 'image/pngé', 'text', 'a/b; c', 'x/'.padEnd(300, 'y')]) {
      const res = await stack.api('/storage/upload/initiate', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ content_type: contentType }),
      });
      expect({ contentType, status: res.status }).toEqual({ contentType, status: 422 });
      const body = (await res.json()) as { detail: { loc: unknown[] }[] };
      expect(body.detail[0]!.loc).toEqual(['body', 'content_type']);
    }
  });
});

describe('the key is checked before the body is read', () => {
  it('answers 401 to an anonymous 20 MiB body after its first kilobyte', async () => {
    const url = new URL(`${stack.url}/${APP}`);
    const req = httpRequest(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(20 * 1024 * 1024) },
    });
    req.on('error', () => undefined);
    // Only the start of the body is ever sent: a server that parses first would wait for the rest forever.
    req.write(`{"a":"${'x'.repeat(1024)}`);
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    req.destroy();
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(Buffer.concat(chunks).toString('utf8'))).toEqual({ detail: expect.any(String) });
  });
});

describe('bad input gets a clear 4xx', () => {
  it('answers a JSON body nested 10,000 deep with a 422, not a 500', async () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    for (const path of [`/${APP}`, '/storage/upload/initiate']) {
      const res = await stack.api(path, { method: 'POST', headers: json, body: `{"a":${deep}}` });
      expect({ path, status: res.status }).toEqual({ path, status: 422 });
      expect(await res.json()).toEqual({
        detail: [{ loc: ['body'], msg: expect.stringContaining('nested deeper'), type: 'value_error.jsondepth' }],
      });
    }
    // Depth within the limit, and brackets inside strings, are still fine.
    const fine = await stack.api(`/${APP}`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ a: [[[1]]], s: '['.repeat(500) }),
    });
    expect(fine.status).toBe(200);
    await fine.json();
  });

  it('answers an expiration_duration_seconds above ten years with a 422, at submit and at upload', async () => {
    const tooLong = JSON.stringify({ expiration_duration_seconds: 9e12 });
    const submit = await stack.api(`/${APP}`, {
      method: 'POST',
      headers: { ...json, 'x-fal-object-lifecycle-preference': tooLong },
      body: '{}',
    });
    expect(submit.status).toBe(422);
    expect(await submit.json()).toEqual({
      detail: [
        expect.objectContaining({
          loc: ['headers', 'x-fal-object-lifecycle-preference', 'expiration_duration_seconds'],
        }),
      ],
    });
    const upload = await stack.api('/storage/upload/initiate', {
      method: 'POST',
      headers: { ...json, 'x-fal-object-lifecycle': tooLong },
      body: '{}',
    });
    expect(upload.status).toBe(422);
    await upload.json();
    const tenYears = JSON.stringify({ expiration_duration_seconds: 10 * 365 * 24 * 3600 });
    const fine = await stack.api('/storage/upload/initiate', {
      method: 'POST',
      headers: { ...json, 'x-fal-object-lifecycle': tenYears },
      body: '{}',
    });
    expect(fine.status).toBe(200);
    await fine.json();
  });
});

describe('behind a TLS-terminating proxy (TRUST_PROXY)', () => {
  const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' };

  it('builds status, response, cancel and upload URLs from X-Forwarded-Proto and -Host of a trusted proxy', async () => {
    const submit = await stack.api(`/${APP}`, { method: 'POST', headers: { ...json, ...forwarded }, body: '{}' });
    const body = (await submit.json()) as Record<string, string>;
    expect(submit.status).toBe(200);
    const base = `https://api.example.com/${APP}/requests/${body.request_id}`;
    expect([body.response_url, body.status_url, body.cancel_url]).toEqual([base, `${base}/status`, `${base}/cancel`]);

    const initiate = await stack.api('/storage/upload/initiate', {
      method: 'POST',
      headers: { ...json, ...forwarded },
      body: '{}',
    });
    const { upload_url } = (await initiate.json()) as { upload_url: string };
    expect(upload_url).toMatch(/^https:\/\/api\.example\.com\/storage\/upload\//);
  });

  it('ignores forwarded headers when no proxy is trusted', async () => {
    const plain = await startStack({
      models: { models: [{ id: APP, backend: { kind: 'http', url: backend.url } }] },
      workers: false,
    });
    try {
      const res = await plain.api('/storage/upload/initiate', {
        method: 'POST',
        headers: { ...json, ...forwarded },
        body: '{}',
      });
      const { upload_url } = (await res.json()) as { upload_url: string };
      expect(upload_url.startsWith(`${plain.url}/storage/upload/`)).toBe(true);
    } finally {
      await plain.stop();
    }
  });
});

describe('webhook redelivery is rate-limited', () => {
  const redeliver = (requestId: string) =>
    stack.api(`/${APP}/requests/${requestId}/webhook/redeliver`, { method: 'POST', key: TEST_KEY });

  async function delivered(): Promise<string> {
    const { request_id } = await submitJson(stack, `/${APP}?fal_webhook=${encodeURIComponent(receiver.url)}`, {});
    await eventually(async () => {
      const res = await stack.api(`/${APP}/requests/${request_id}/webhook`);
      const log = (await res.json()) as { state?: string };
      return res.status === 200 && log.state === 'delivered' ? true : undefined;
    });
    return request_id;
  }

  it('per request, then per owner: 429 in the fal error shape with Retry-After', async () => {
    const first = await delivered();
    expect((await redeliver(first)).status).toBe(202);
    expect((await redeliver(first)).status).toBe(202);
    const limited = await redeliver(first);
    expect(limited.status).toBe(429);
    expect(await limited.json()).toEqual({ detail: expect.stringContaining('Too many redeliveries') });
    // 2 per hour: the next one is 30 minutes away.
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(1700);

    // The owner had 3; two went to the first request.
    const second = await delivered();
    expect((await redeliver(second)).status).toBe(202);
    const ownerLimited = await redeliver(second);
    expect(ownerLimited.status).toBe(429);
    expect(ownerLimited.headers.get('retry-after')).toMatch(/^\d+$/);
    await ownerLimited.json();
  });
});
