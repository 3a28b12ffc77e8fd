import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { ConfigError, loadConfig } from '../../src/config';
import {
  ENCRYPTED_ENCODING,
  EncryptionCodec,
  KEY_ID_METADATA,
  PayloadDecryptionError,
  createPayloadCodecs,
  parseEncryptionKeys,
  type EncryptionKey,
} from '../../src/codec';

const key = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString();
const input = { prompt: 'a secret prompt', webhook: 'https://hooks.example.com/h?token=s3cret' };

async function encodeOne(codec: EncryptionCodec, value: unknown): Promise<Payload> {
  const [payload] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
  return payload!;
}
async function decodeOne(codec: EncryptionCodec, payload: Payload): Promise<unknown> {
  const [decoded] = await codec.decode([payload]);
  return defaultPayloadConverter.fromPayload(decoded!);
}

describe('the AES-256-GCM payload codec', () => {
  it('stores ciphertext under binary/encrypted with the key id, and decodes it back', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const payload = await encodeOne(codec, input);
    expect(text(payload.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(payload.metadata?.[KEY_ID_METADATA])).toBe('k1');
    // Neither the value nor its original encoding (json/plain) is visible.
    expect(Object.keys(payload.metadata ?? {}).sort()).toEqual(['encoding', KEY_ID_METADATA]);
    expect(text(payload.data)).not.toContain('secret');
    expect(text(payload.data)).not.toContain('json');
    expect(await decodeOne(codec, payload)).toEqual(input);
  });

  it('uses a fresh nonce per payload: the same value never encrypts to the same bytes', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const [a, b] = await Promise.all([encodeOne(codec, input), encodeOne(codec, input)]);
    expect(Buffer.from(a.data!).equals(Buffer.from(b.data!))).toBe(false);
  });

  it('rotation: the new key encrypts, the old key still decrypts, and a codec without the new key refuses', async () => {
    const old = key('2026-01');
    const next = key('2026-07');
    const before = new EncryptionCodec([old]);
    const after = new EncryptionCodec([next, old]);
    const written = await encodeOne(before, input);
    expect(await decodeOne(after, written)).toEqual(input);
    const rewritten = await encodeOne(after, input);
    expect(text(rewritten.metadata?.[KEY_ID_METADATA])).toBe('2026-07');
    expect(after.currentKeyId).toBe('2026-07');
    await expect(before.decode([rewritten])).rejects.toThrow(/key "2026-07", which PAYLOAD_ENCRYPTION_KEYS does not/);
  });

  it('tampering fails: a flipped ciphertext bit, a swapped key id, a wrong key or a truncated payload', async () => {
    const k1 = key('k1');
    const k2 = key('k2');
    const codec = new EncryptionCodec([k1, k2]);
    const payload = await encodeOne(codec, input);
    const flipped = Buffer.from(payload.data!);
    flipped[20]! ^= 0x01;
    await expect(codec.decode([{ ...payload, data: flipped }])).rejects.toBeInstanceOf(PayloadDecryptionError);
    const swapped = { ...payload, metadata: { ...payload.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
    await expect(codec.decode([swapped])).rejects.toThrow(/failed authentication with key "k2"/);
    const impostor = new EncryptionCodec([{ id: 'k1', key: randomBytes(32) }]);
    await expect(impostor.decode([payload])).rejects.toThrow(/failed authentication/);
    const truncated = { ...payload, data: Buffer.from(payload.data!).subarray(0, 20) };
    await expect(codec.decode([truncated])).rejects.toThrow(/truncated/);
  });

  it('passes payloads written before encryption was on through unchanged', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const clear = defaultPayloadConverter.toPayload(input);
    expect(await decodeOne(codec, clear)).toEqual(input);
  });
});

describe('PAYLOAD_ENCRYPTION_KEYS', () => {
  const b64 = () => randomBytes(32).toString('base64');

  it('parses id:base64 entries in order; the first encrypts', () => {
    const [a, b] = [b64(), b64()];
    const keys = parseEncryptionKeys(` new:${a} , old:${b} `);
    expect(keys.map((k) => k.id)).toEqual(['new', 'old']);
    expect(Buffer.from(keys[0]!.key).toString('base64')).toBe(a);
    const config = loadConfig({ PAYLOAD_ENCRYPTION_KEYS: `new:${a},old:${b}`, CODEC_AUTH_TOKENS: 'op1, op2' });
    expect(config.codec.authTokens).toEqual(['op1', 'op2']);
    const [codec] = createPayloadCodecs(config);
    expect((codec as EncryptionCodec).currentKeyId).toBe('new');
  });

  it('is off by default: no codec at all', () => {
    expect(createPayloadCodecs(loadConfig({}))).toEqual([]);
  });

  it.each([
    ['a short key', `k:${randomBytes(16).toString('base64')}`, /"k" must be 32 bytes/],
    ['no key', 'k', /"k" must be 32 bytes/],
    ['not base64', `k:${'!'.repeat(44)}`, /"k" must be 32 bytes/],
    ['a bad id', `bad id:${randomBytes(32).toString('base64')}`, /key id "bad id"/],
    ['a repeated id', `k:${randomBytes(32).toString('base64')},k:${randomBytes(32).toString('base64')}`, /twice/],
  ])('refuses %s, naming the variable and never echoing key material', (_, value, message) => {
    let error: unknown;
    try {
      loadConfig({ PAYLOAD_ENCRYPTION_KEYS: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/PAYLOAD_ENCRYPTION_KEYS/);
    expect((error as Error).message).toMatch(message);
    const secret = value.split(':')[1];
    if (secret) expect((error as Error).message).not.toContain(secret);
  });

  it('reads the OIDC operators settings, issuer and audience together', () => {
    const env = { CODEC_OIDC_ISSUER: 'https://idp.example.com/', CODEC_OIDC_AUDIENCE: 'temporal-ui' };
    expect(loadConfig({ ...env, CODEC_OIDC_CLAIM: 'groups=temporal-operators' }).codec.oidc).toEqual({
      issuer: 'https://idp.example.com/',
      audience: 'temporal-ui',
      claim: { name: 'groups', value: 'temporal-operators' },
    });
    expect(() => loadConfig({ CODEC_OIDC_ISSUER: env.CODEC_OIDC_ISSUER })).toThrow(/go together/);
    expect(() => loadConfig({ ...env, CODEC_OIDC_CLAIM: 'groups' })).toThrow(/CODEC_OIDC_CLAIM/);
  });

  it('refuses a codec CORS origin that is not an http(s) URL', () => {
    expect(() => loadConfig({ CODEC_CORS_ORIGINS: 'ui.example.com' })).toThrow(/CODEC_CORS_ORIGINS/);
    expect(loadConfig({ CODEC_CORS_ORIGINS: 'https://ui.example.com/' }).codec.corsOrigins).toEqual([
      'https://ui.example.com',
    ]);
  });
});
