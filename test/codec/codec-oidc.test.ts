import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultPayloadConverter } from '@temporalio/common';
import express from 'express';
import { SignJWT, exportJWK, generateKeyPair, type KeyLike } from 'jose';
import pino from 'pino';
import { codecRoutes } from '../../src/api/codec-routes';
import { errorHandler } from '../../src/api/error-handler';
import { EncryptionCodec } from '../../src/codec';
import { respondJson, startLoopbackServer, type LoopbackServer } from '../helpers/http-peers';

const AUDIENCE = 'temporal-ui';
const STATIC_TOKEN = `op-${randomBytes(8).toString('hex')}`;

describe('the codec endpoint accepts the OIDC access token the Web UI passes (codec.passAccessToken)', () => {
  let idp: LoopbackServer;
  let issuer: string;
  let server: Server;
  let url: string;
  let signingKey: KeyLike;
  let body: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    signingKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
    // A real OIDC provider's two documents, on loopback: discovery, and the keys it names.
    idp = await startLoopbackServer((req, raw, res) => {
      if (req.url === '/.well-known/openid-configuration') {
        return respondJson(200, { issuer, jwks_uri: `${issuer}/jwks` })(req, raw, res);
      }
      if (req.url === '/jwks') return respondJson(200, { keys: [jwk] })(req, raw, res);
      return respondJson(404, {})(req, raw, res);
    });
    issuer = idp.url;
    const codec = new EncryptionCodec([{ id: 'k1', key: randomBytes(32) }]);
    const app = express();
    app.use(
      codecRoutes({
        codecs: [codec],
        authTokens: [STATIC_TOKEN],
        corsOrigins: [],
        logger: pino({ level: 'silent' }),
        oidc: { issuer, audience: AUDIENCE, claim: { name: 'groups', value: 'temporal-operators' } },
      }),
    );
    app.use(errorHandler(pino({ level: 'silent' })));
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const [encrypted] = await codec.encode([defaultPayloadConverter.toPayload({ prompt: 'hello' })]);
    body = JSON.stringify({
      payloads: [
        {
          metadata: Object.fromEntries(
            Object.entries(encrypted!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
          data: Buffer.from(encrypted!.data!).toString('base64'),
        },
      ],
    });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await idp?.close();
  });

  const token = (
    claims: Record<string, unknown>,
    options: { key?: KeyLike; audience?: string; expires?: string } = {},
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(issuer)
      .setAudience(options.audience ?? AUDIENCE)
      .setSubject('someone@example.com')
      .setIssuedAt()
      .setExpirationTime(options.expires ?? '5m')
      .sign(options.key ?? signingKey);
  const decode = (bearer: string) =>
    fetch(`${url}/codec/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body,
    });

  it("decodes for an operator: the provider's token, for our audience, in the operators' group", async () => {
    const res = await decode(await token({ groups: ['staff', 'temporal-operators'] }));
    expect(res.status).toBe(200);
    const { payloads } = (await res.json()) as { payloads: { data: string }[] };
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual({ prompt: 'hello' });
  });

  it('still takes the static operator tokens', async () => {
    expect((await decode(STATIC_TOKEN)).status).toBe(200);
  });

  it.each([
    ['outside the operators group', () => token({ groups: ['staff'] })],
    ['for another audience', () => token({ groups: ['temporal-operators'] }, { audience: 'other-app' })],
    ['expired', () => token({ groups: ['temporal-operators'] }, { expires: '-1m' })],
    [
      'signed by a key the provider does not publish',
      async () => token({ groups: ['temporal-operators'] }, { key: (await generateKeyPair('ES256')).privateKey }),
    ],
    [
      'unsigned (alg none)',
      async () => {
        const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
        const claims = {
          iss: issuer,
          aud: AUDIENCE,
          groups: ['temporal-operators'],
          exp: Math.floor(Date.now() / 1000) + 300,
        };
        return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
      },
    ],
  ])('refuses a token %s with 401', async (_, make) => {
    const res = await decode(await make());
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain('hello');
  });
});
