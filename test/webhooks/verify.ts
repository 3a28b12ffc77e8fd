import { createHash, createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Webhook } from 'standardwebhooks';

/** What a receiver has: the raw body and the headers. */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

const header = (headers: IncomingHttpHeaders, name: string) => String(headers[name] ?? '');

/**
 * fal's recipe, with nothing but Node's crypto: the signature is hex Ed25519 over
 * `"{request_id}\n{user_id}\n{timestamp}\n{sha256_hex(body)}"`, by any key of the JWKS, and the
 * timestamp must be within ±300 s of now.
 */
export function verifyFal(
  received: Received,
  jwks: { keys: readonly object[] },
  nowSeconds = Date.now() / 1000,
): boolean {
  const { headers, body } = received;
  const timestamp = header(headers, 'x-fal-webhook-timestamp');
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return false;
  const message = [
    header(headers, 'x-fal-webhook-request-id'),
    header(headers, 'x-fal-webhook-user-id'),
    timestamp,
    createHash('sha256').update(body).digest('hex'),
  ].join('\n');
  const signature = Buffer.from(header(headers, 'x-fal-webhook-signature'), 'hex');
  return jwks.keys.some((jwk) =>
    verify(null, Buffer.from(message), createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }), signature),
  );
}

/** Standard Webhooks, with the reference `standardwebhooks` package; throws when verification fails. */
export function verifyStandard(received: Received, secret: string): unknown {
  const { headers, body } = received;
  return new Webhook(secret).verify(body, {
    'webhook-id': header(headers, 'webhook-id'),
    'webhook-timestamp': header(headers, 'webhook-timestamp'),
    'webhook-signature': header(headers, 'webhook-signature'),
  });
}
