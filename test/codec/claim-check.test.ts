import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Payload } from '@temporalio/common';
import { ClaimCheckCodec, CLAIM_CHECK_METADATA_KEY, type ClaimCheckReference } from '../../src/codec/claim-check';
import { payloadConverter } from '../../src/codec/payload-converter';
import { LocalFileStore } from '../../src/storage/local-file-store';

function newCodec(thresholdBytes = 1024) {
  const dir = mkdtempSync(join(tmpdir(), 'claim-check-'));
  const store = new LocalFileStore(join(dir, 'files'), 'http://127.0.0.1:1');
  return { codec: new ClaimCheckCodec({ store: store.payloads, thresholdBytes }), store };
}

const text = (bytes?: Uint8Array | null) => Buffer.from(bytes ?? []).toString('utf8');

describe('claim-check payload codec', () => {
  it('leaves payloads up to the threshold untouched, readable in history', async () => {
    const { codec } = newCodec();
    const small = payloadConverter.toPayload({ prompt: 'a cat' });
    expect(await codec.encode([small])).toEqual([small]);
  });

  it('moves a large payload to the store, keeps a readable reference, and restores it byte for byte', async () => {
    const { codec, store } = newCodec();
    const value = { image: `data:image/png;base64,${'A'.repeat(50_000)}`, seed: 1 };
    const original = payloadConverter.toPayload(value);
    const [encoded] = await codec.encode([original]);
    expect(text(encoded!.metadata!.encoding)).toBe('json/plain');
    expect(text(encoded!.metadata![CLAIM_CHECK_METADATA_KEY])).toBe('v1');
    const reference = JSON.parse(text(encoded!.data)) as ClaimCheckReference;
    expect(reference).toMatchObject({ bytes: original.data!.length, encoding: 'json/plain' });
    expect(reference.claim_check).toBe(store.payloads.describe(reference.sha256));
    expect(reference.preview).toMatch(/^\{"image":"data:image\/png;base64,AAAA/);
    expect(encoded!.data!.length).toBeLessThan(1024);

    const [decoded] = await codec.decode([encoded!]);
    expect(Buffer.from(decoded!.data!).equals(Buffer.from(original.data!))).toBe(true);
    expect(text(decoded!.metadata!.encoding)).toBe('json/plain');
    expect(payloadConverter.fromPayload(decoded!)).toEqual(value);
  });

  it('refuses bytes that do not match the reference, and says when they are gone', async () => {
    const { codec, store } = newCodec();
    const [encoded] = await codec.encode([payloadConverter.toPayload('x'.repeat(5000))]);
    const { sha256 } = JSON.parse(text(encoded!.data)) as ClaimCheckReference;
    await store.payloads.put(sha256, Buffer.from('tampered'));
    await expect(codec.decode([encoded!])).rejects.toThrow(/does not match its SHA-256/);
    expect(await store.payloads.sweep(0, Date.now() + 1000)).toEqual({ deleted: 1, kept: 0 });
    await expect(codec.decode([encoded!])).rejects.toThrow(/is not in the store/);
  });

  it('with the claim check off, a payload over Temporal limit is refused with a reason, not sent', async () => {
    const { codec } = newCodec(0);
    const big: Payload = payloadConverter.toPayload('x'.repeat(3 * 1024 * 1024));
    await expect(codec.encode([big])).rejects.toMatchObject({ name: 'PayloadTooLargeError' });
  });
});
