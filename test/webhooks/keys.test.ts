import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebhookKeyError, WebhookKeys } from '../../src/webhooks/keys';
import { WebhookSigner } from '../../src/webhooks/signing';
import { verifyFal, verifyStandard } from './verify';

/** Signing material on disk: generated once, kept, rotated without losing old keys. */
const freshDir = () => join(mkdtempSync(join(process.env.TEST_TMP_DIR ?? '/tmp', 'keys-')), 'webhook-keys');

async function signedDelivery(keys: WebhookKeys, requestId = 'req-1') {
  const body = JSON.stringify({ request_id: requestId, status: 'OK', payload: { n: 1 }, error: null });
  const headers = await new WebhookSigner(async () => keys).headers({
    requestId,
    owner: 'alice',
    body,
    timestamp: Math.floor(Date.now() / 1000),
  });
  return { headers, body };
}

describe('webhook keys', () => {
  it('generates a key pair and a master secret on first start, private to the owner, and keeps them', async () => {
    const dir = freshDir();

    const first = await WebhookKeys.open(dir);
    const again = await WebhookKeys.open(dir);

    expect(await again.jwks()).toEqual(await first.jwks());
    expect(again.ownerSecret('alice')).toBe(first.ownerSecret('alice'));
    expect((await first.jwks()).keys).toHaveLength(1);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
  });

  it('derives a different whsec_ secret for every owner', async () => {
    const keys = await WebhookKeys.open(freshDir());

    expect(keys.ownerSecret('alice')).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(keys.ownerSecret('bob')).not.toBe(keys.ownerSecret('alice'));
  });

  it('agrees with itself when the API and a worker start together on an empty directory', async () => {
    const dir = freshDir();

    const [api, worker] = await Promise.all([WebhookKeys.open(dir), WebhookKeys.open(dir)]);

    expect(api.ownerSecret('alice')).toBe(worker.ownerSecret('alice'));
    expect(await api.jwks()).toEqual(await worker.jwks());
    const delivery = await signedDelivery(worker);
    expect(verifyFal(delivery, await api.jwks())).toBe(true);
  });

  it('signs with the newest key after a rotation and keeps publishing the old one, without a restart', async () => {
    const dir = freshDir();
    const keys = await WebhookKeys.open(dir);
    const before = await signedDelivery(keys);
    const [oldKey] = (await keys.jwks()).keys;

    const kid = await WebhookKeys.rotate(dir);
    const after = await signedDelivery(keys);
    const { keys: published } = await keys.jwks();

    expect(published.map((k) => k.kid)).toEqual([kid, oldKey!.kid]);
    expect((await keys.signingKey()).kid).toBe(kid);
    // Deliveries signed before the rotation still verify against the JWKS; new ones need the new key.
    expect(verifyFal(before, { keys: published })).toBe(true);
    expect(verifyFal(after, { keys: [published[0]!] })).toBe(true);
    expect(verifyFal(after, { keys: [oldKey!] })).toBe(false);
    // The Standard Webhooks secret does not change with the Ed25519 key.
    expect(() => verifyStandard(after, keys.ownerSecret('alice'))).not.toThrow();
  });

  it('orders keys by creation even when rotations come faster than the clock moves', async () => {
    const dir = freshDir();
    await WebhookKeys.open(dir);
    const frozen = new Date();

    const kids = [await WebhookKeys.rotate(dir, frozen), await WebhookKeys.rotate(dir, frozen)];

    const keys = await WebhookKeys.open(dir);
    expect((await keys.signingKey()).kid).toBe(kids[1]);
    expect((await keys.jwks()).keys.map((k) => k.kid).slice(0, 2)).toEqual([kids[1], kids[0]]);
  });

  it('uses keys given by configuration instead of generating its own', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'operator.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));

    const keys = await WebhookKeys.open(dir);

    const { keys: published } = await keys.jwks();
    expect(published).toHaveLength(1);
    expect(published[0]!.x).toBe(publicKey.export({ format: 'jwk' }).x);
    expect(verifyFal(await signedDelivery(keys), { keys: published })).toBe(true);
  });

  it('refuses a key file that is not an Ed25519 private key, naming it', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'wrong.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));

    await expect(WebhookKeys.open(dir)).rejects.toThrow(WebhookKeyError);
    await expect(WebhookKeys.open(dir)).rejects.toThrow(/wrong\.pem is a ec key, not Ed25519/);
  });
});
