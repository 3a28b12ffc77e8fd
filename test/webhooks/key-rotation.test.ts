import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JWKS_MAX_AGE_SECONDS, WebhookKeys } from '../../src/webhooks/keys';
import { WebhookSigner } from '../../src/webhooks/signing';
import { verifyFal, verifyStandard } from './verify';

/** Rotation in two steps, so no receiver ever holds a signature it cannot verify (issue 16). */
describe('webhook key rotation with overlap', () => {
  const delivery = (timestamp: number) => ({ requestId: 'req-1', owner: 'alice', body: '{"a":1}', timestamp });

  it('publishes a prepared Ed25519 key before it signs, and activates it only after the JWKS cache lifetime', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotation-'));
    const keys = await WebhookKeys.open(dir);
    const signer = new WebhookSigner(async () => keys);
    const before = await keys.signingKey();
    // After the first key, which open() made on the real clock.
    const t0 = new Date(Date.now() + 60_000);

    const staged = await WebhookKeys.prepareRotation(dir, { now: t0 });
    // Published at once, first after the signing key; not signing yet.
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([before.kid, staged]);
    expect((await keys.signingKey()).kid).toBe(before.kid);
    await expect(WebhookKeys.prepareRotation(dir, { now: t0 })).rejects.toThrow(/staged already/);

    // A receiver that fetched the JWKS now can verify whatever is signed after activation.
    const cachedJwks = await keys.jwks();
    const early = new Date(t0.getTime() + (JWKS_MAX_AGE_SECONDS - 1) * 1000);
    await expect(WebhookKeys.activateRotation(dir, { now: early })).rejects.toThrow(/try again in 1 s/);
    const due = new Date(t0.getTime() + JWKS_MAX_AGE_SECONDS * 1000);
    expect(await WebhookKeys.activateRotation(dir, { now: due })).toBe(staged);

    expect((await keys.signingKey()).kid).toBe(staged);
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([staged, before.kid]);
    const now = Math.floor(Date.now() / 1000);
    const headers = await signer.headers(delivery(now));
    expect(verifyFal({ headers, body: '{"a":1}' }, cachedJwks, now)).toBe(true);
  });

  it('signs with both whsec_ secrets while a secret rotation is staged, and with the new one after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotation-'));
    const keys = await WebhookKeys.open(dir);
    const signer = new WebhookSigner(async () => keys);
    const old = keys.ownerSecret('alice');
    const now = Math.floor(Date.now() / 1000);

    await WebhookKeys.prepareRotation(dir, { secret: true });
    const { secret, next } = await keys.ownerSecrets('alice');
    expect(secret).toBe(old);
    expect(next).toMatch(/^whsec_/);
    const during = await signer.headers(delivery(now));
    expect(during['webhook-signature']).toMatch(/^v1,\S+ v1,\S+$/);
    // Receivers on either secret verify the same delivery.
    expect(() => verifyStandard({ headers: during, body: '{"a":1}' }, old)).not.toThrow();
    expect(() => verifyStandard({ headers: during, body: '{"a":1}' }, next!)).not.toThrow();

    await WebhookKeys.activateRotation(dir, { minPublishedSeconds: 0 });
    expect(await keys.ownerSecrets('alice')).toEqual({ secret: next });
    const after = await signer.headers(delivery(now));
    expect(after['webhook-signature']).toMatch(/^v1,\S+$/);
    expect(() => verifyStandard({ headers: after, body: '{"a":1}' }, next!)).not.toThrow();
    expect(() => verifyStandard({ headers: after, body: '{"a":1}' }, old)).toThrow();
  });
});
