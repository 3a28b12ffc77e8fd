import { createHash, timingSafeEqual } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import cors from 'cors';
import express, { Router, type RequestHandler } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { z } from 'zod';
import { HttpError } from './http-error';

/** Where the codec endpoint is mounted; the Temporal UI and CLI append `/encode` and `/decode`. */
export const CODEC_PATH = '/codec';

/** Payload bytes in protobuf JSON: standard or URL-safe base64 (protobuf JSON parsers accept both). */
const Base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');

/** A `temporal.api.common.v1.Payload` in protobuf JSON: metadata values and data are base64. */
export const JsonPayload = z.object({
  metadata: z.record(z.string(), Base64).nullish(),
  data: Base64.nullish(),
});
export type JsonPayload = z.infer<typeof JsonPayload>;

/** Body of `/codec/encode` and `/codec/decode`, and of their answers: `temporal.api.common.v1.Payloads`. */
/** Protobuf JSON leaves an empty list out: the CLI and the UI send `{}` for an event with no payloads (a signal without arguments). */
export const CodecBody = z.object({ payloads: z.array(JsonPayload).default([]) });
export type CodecBody = z.infer<typeof CodecBody>;

export interface CodecRoutesDeps {
  /** The codec chain in encode order, the same the clients and workers use (`createPayloadCodecs`). */
  codecs: readonly PayloadCodec[];
  /** Operators' bearer tokens (`CODEC_AUTH_TOKENS`); none = every call is refused. */
  authTokens: readonly string[];
  /** Browser origins allowed to call the endpoint (the Temporal Web UI's, `CODEC_CORS_ORIGINS`). */
  corsOrigins: readonly string[];
  /** Also accept the OIDC access tokens the Web UI passes (`codec.passAccessToken`); omitted = static tokens only. */
  oidc?: OidcOperators;
  logger: Logger;
  /** Largest request body. @default 8 MiB: a 4 MiB gRPC message (Temporal's limit) in base64, with room to spare */
  maxBodyBytes?: number;
}

/**
 * Temporal's codec-server protocol on the API: `POST /codec/encode` and `POST /codec/decode` take and
 * answer `{ payloads: [...] }` in protobuf JSON, so the Web UI (`--ui-codec-endpoint`, or its codec
 * setting) and the CLI (`--codec-endpoint`) show decrypted payloads to operators. The operator token is
 * checked before the body is read; tenant API keys are never accepted here, because decoding shows every
 * tenant's inputs. CORS lets the UI's origin call it from the browser; preflights need no token.
 */
export function codecRoutes(deps: CodecRoutesDeps): Router {
  const router = Router();
  const allowed = new Set(deps.corsOrigins);
  router.use(
    CODEC_PATH,
    cors({
      origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
      methods: ['POST'],
      // X-Namespace is what the UI and CLI send with every call; Authorization carries the operator token.
      allowedHeaders: ['Content-Type', 'X-Namespace', 'Authorization'],
      // The UI's "include cross-origin credentials" codec setting sends cookies and needs this.
      credentials: true,
      maxAge: 600,
    }),
  );
  const parse = express.json({ limit: deps.maxBodyBytes ?? 8 * 1024 * 1024 });
  const auth = requireOperator(deps.authTokens, deps.oidc && oidcVerifier(deps.oidc, deps.logger));
  const encodeOrder = [...deps.codecs];
  const decodeOrder = [...deps.codecs].reverse();

  const convert = (direction: 'encode' | 'decode'): RequestHandler => {
    const codecs = direction === 'encode' ? encodeOrder : decodeOrder;
    return async (req, res) => {
      const body = CodecBody.safeParse(req.body);
      if (!body.success) {
        throw new HttpError(400, { detail: `Body is not { payloads: [...] } in protobuf JSON: ${body.error.message}` });
      }
      let payloads = body.data.payloads.map(fromJson);
      try {
        for (const codec of codecs) payloads = await codec[direction](payloads);
      } catch (err) {
        // The protocol's answer to a codec error; the message names a key id at most, never key material.
        deps.logger.warn({ err, namespace: req.get('x-namespace') }, `codec endpoint could not ${direction}`);
        throw new HttpError(400, { detail: `Could not ${direction} the payloads: ${(err as Error).message}` });
      }
      res.json({ payloads: payloads.map(toJson) } satisfies CodecBody);
    };
  };
  router.post(`${CODEC_PATH}/encode`, auth, parse, convert('encode'));
  router.post(`${CODEC_PATH}/decode`, auth, parse, convert('decode'));
  return router;
}

/**
 * Operators as an OpenID Connect provider vouches for them: a JWT from `issuer` (keys from its discovery
 * document's `jwks_uri`) for `audience`, and, when `claim` is given, carrying that value (a string
 * claim equal to it, or a list claim containing it, e.g. `groups` containing `temporal-operators`).
 */
export interface OidcOperators {
  issuer: string;
  audience: string;
  claim?: { name: string; value: string };
}

/** Public-key algorithms only: a JWKS never holds the shared secret an HMAC token would need. */
const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const Discovery = z.object({ jwks_uri: z.url({ protocol: /^https?$/ }) });

/** Checks an OIDC access token; `false` for a token that is not an operator's, throws when the provider is unreachable. */
function oidcVerifier(oidc: OidcOperators, logger: Logger): (token: string) => Promise<boolean> {
  let keys: Promise<JWTVerifyGetKey> | undefined;
  const discover = async (): Promise<JWTVerifyGetKey> => {
    const res = await fetch(`${oidc.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`OIDC discovery answered ${res.status}`);
    return createRemoteJWKSet(new URL(Discovery.parse(await res.json()).jwks_uri));
  };
  return async (token) => {
    // Discovered once; a failed discovery is retried by the next call rather than remembered.
    keys ??= discover().catch((err: unknown) => {
      keys = undefined;
      throw err;
    });
    let getKey: JWTVerifyGetKey;
    try {
      getKey = await keys;
    } catch (err) {
      logger.error({ err, issuer: oidc.issuer }, 'codec endpoint cannot reach the OIDC provider');
      throw new HttpError(503, { detail: 'The OIDC provider that vouches for operators did not answer' });
    }
    try {
      const { payload } = await jwtVerify(token, getKey, {
        issuer: oidc.issuer,
        audience: oidc.audience,
        algorithms: JWT_ALGORITHMS,
      });
      if (!oidc.claim) return true;
      const value: unknown = payload[oidc.claim.name];
      return value === oidc.claim.value || (Array.isArray(value) && value.includes(oidc.claim.value));
    } catch {
      return false;
    }
  };
}

/**
 * `Authorization: Bearer <token>` with one of `tokens` (compared in constant time), or, when `verifyJwt`
 * is given, an operator's OIDC access token.
 */
function requireOperator(tokens: readonly string[], verifyJwt?: (token: string) => Promise<boolean>): RequestHandler {
  // Comparing digests keeps the comparison constant-time whatever the lengths.
  const digests = tokens.map(digest);
  return async (req, _res, next) => {
    const token = /^Bearer\s+(\S+)$/i.exec(req.get('authorization')?.trim() ?? '')?.[1];
    const given = token === undefined ? undefined : digest(token);
    const allowed =
      token !== undefined &&
      (digests.some((d) => timingSafeEqual(d, given!)) ||
        (verifyJwt !== undefined && token.split('.').length === 3 && (await verifyJwt(token))));
    if (!allowed) {
      throw new HttpError(
        401,
        { detail: "The codec endpoint needs an operator token: 'Authorization: Bearer <token>' (CODEC_AUTH_TOKENS)" },
        { 'WWW-Authenticate': 'Bearer realm="codec"' },
      );
    }
    next();
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function fromJson(payload: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]),
    ),
    data: Buffer.from(payload.data ?? '', 'base64'),
  };
}

function toJson(payload: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}
