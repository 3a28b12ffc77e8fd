import { createHash, createHmac, sign } from 'node:crypto';
import type { WebhookKeys } from './keys';

/** What one delivery is signed over. */
export interface SignedDelivery {
  requestId: string;
  /** The request's owner: `X-Fal-Webhook-User-Id`, and whose `whsec_` secret signs. */
  owner: string;
  /** The exact bytes sent as the body. */
  body: string;
  /** Unix seconds; each attempt is signed afresh so receivers can reject stale replays. */
  timestamp: number;
}

/** Standard Webhooks' `webhook-id`: the same for every attempt and redelivery of one request's webhook. */
export function webhookMessageId(requestId: string): string {
  return `msg_${requestId}`;
}

/**
 * Signs deliveries with both schemes at once:
 * - fal's: `X-Fal-Webhook-Signature` = hex Ed25519 over
 *   `"{request_id}\n{user_id}\n{timestamp}\n{sha256_hex(body)}"`, public keys at `/.well-known/jwks.json`;
 * - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with
 *   the owner's `whsec_` secret; while a secret rotation is staged, with the next secret too, as a
 *   second space-separated `v1,...` (receivers accept any one that verifies).
 *
 * Runs only in activities: the keys never enter workflow history.
 */
export class WebhookSigner {
  private keys: Promise<WebhookKeys> | undefined;

  /**
   * @param openKeys opens the key store; called on first use, so a worker that never delivers a
   *   webhook (a model runner on another host) never creates keys of its own
   */
  constructor(private readonly openKeys: () => Promise<WebhookKeys>) {}

  async headers(delivery: SignedDelivery): Promise<Record<string, string>> {
    const { requestId, owner, body, timestamp } = delivery;
    this.keys ??= this.openKeys().catch((err: unknown) => {
      this.keys = undefined;
      throw err;
    });
    const keys = await this.keys;
    // Both from one look at the key directory.
    const [{ privateKey }, { secret, next }] = await Promise.all([keys.signingKey(), keys.ownerSecrets(owner)]);
    const bodyHash = createHash('sha256').update(body, 'utf8').digest('hex');
    const falMessage = `${requestId}\n${owner}\n${timestamp}\n${bodyHash}`;
    const falSignature = sign(null, Buffer.from(falMessage, 'utf8'), privateKey).toString('hex');

    const id = webhookMessageId(requestId);
    const hmac = (whsec: string) =>
      createHmac('sha256', Buffer.from(whsec.slice('whsec_'.length), 'base64'))
        .update(`${id}.${timestamp}.${body}`, 'utf8')
        .digest('base64');
    const signatures = [secret, ...(next ? [next] : [])].map((whsec) => `v1,${hmac(whsec)}`);

    return {
      'x-fal-webhook-request-id': requestId,
      'x-fal-webhook-user-id': owner,
      'x-fal-webhook-timestamp': String(timestamp),
      'x-fal-webhook-signature': falSignature,
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatures.join(' '),
    };
  }
}
