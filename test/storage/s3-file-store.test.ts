import { randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3FileStore, StoreFileMissingError } from '../../src/storage';
import { S3_TEST_KEYS, startSeaweedFs, type SeaweedFs } from '../helpers/seaweedfs';

/** The `s3` file store against a real S3-compatible server (SeaweedFS on loopback, authentication on). */
describe('S3FileStore on SeaweedFS', () => {
  let weed: SeaweedFs;
  let bucket: string;
  const storeWith = (options: Partial<ConstructorParameters<typeof S3FileStore>[0]> = {}) =>
    new S3FileStore({
      bucket,
      prefix: 'pre/fix',
      endpoint: weed.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: S3_TEST_KEYS,
      ...options,
    });

  beforeAll(async () => {
    weed = await startSeaweedFs();
    bucket = `store-${randomUUID().slice(0, 8)}`;
    await weed.bucket(bucket);
  }, 300_000);
  afterAll(async () => weed?.stop());

  it('saves a file whose presigned URL serves it, and a runner reads it back by that URL without HTTP', async () => {
    const store = storeWith();
    const data = Buffer.from('an output file');
    const saved = await store.save({ data, contentType: 'text/plain', fileName: 'out put.txt' });
    expect(saved).toMatchObject({ content_type: 'text/plain', file_name: 'out_put.txt', file_size: data.length });
    expect(saved.url.startsWith(`${weed.endpoint}/${bucket}/pre/fix/files/`)).toBe(true);
    const served = await fetch(saved.url);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(data)).toBe(true);
    expect(await store.readByUrl(saved.url)).toEqual({ data, contentType: 'text/plain' });
    // Anything else is not the store's: the fetcher goes over HTTP (and the egress guard) for it.
    expect(await store.readByUrl('https://example.com/pre/fix/files/x')).toBeUndefined();
  });

  it('stores a 50 MiB file in parts and serves every byte', async () => {
    const store = storeWith();
    const data = Buffer.alloc(50 * 1024 * 1024, 7);
    const saved = await store.save({ data, contentType: 'application/octet-stream', fileName: 'big.bin' });
    const served = Buffer.from(await (await fetch(saved.url)).arrayBuffer());
    expect(served.length).toBe(data.length);
    expect(served.equals(data)).toBe(true);
  }, 120_000);

  it('never reads objects outside files/ for a crafted URL (claim-checked payloads stay private)', async () => {
    const store = storeWith();
    const sha = 'a'.repeat(64);
    await store.payloads.put(sha, Buffer.from('secret payload'));
    expect(store.payloads.describe(sha)).toBe(`s3://${bucket}/pre/fix/payloads/${sha}`);
    expect((await store.payloads.get(sha))?.toString()).toBe('secret payload');
    expect(await store.readByUrl(`${weed.endpoint}/${bucket}/pre/fix/payloads/${sha}`)).toBeUndefined();
  });

  it('a presigned upload lands in the store, with the lifetime the request asked for', async () => {
    const store = storeWith({ uploadWindowSeconds: 600 });
    const reservation = await store.reserveUpload(
      { contentType: 'image/png', fileName: 'in.png' },
      { expiresInSeconds: 30 },
    );
    expect(reservation.uploadUrl).toContain('X-Amz-Signature=');
    // The checksum of an empty body must not be signed into the URL, or every real upload fails with BadDigest.
    expect(reservation.uploadUrl).not.toMatch(/x-amz-checksum/i);
    const put = await fetch(reservation.uploadUrl!, {
      method: 'PUT',
      body: 'png bytes',
      headers: { 'content-type': 'image/png' },
    });
    expect(put.status).toBe(200);
    expect(await store.readByUrl(reservation.fileUrl)).toEqual({
      data: Buffer.from('png bytes'),
      contentType: 'image/png',
    });

    // The sweeper deletes it once its 30 s are over (the clock is given, not waited for).
    const later = Date.now() + 31_000;
    const swept = await store.sweepExpired(later);
    expect(swept.deleted).toBeGreaterThanOrEqual(1);
    await expect(store.readByUrl(reservation.fileUrl)).rejects.toBeInstanceOf(StoreFileMissingError);
    expect((await fetch(reservation.fileUrl)).status).toBe(404);
  });

  it('keeps files whose lifetime has not passed and files kept forever', async () => {
    const store = storeWith({ defaultExpiresInSeconds: 0 });
    const forever = await store.save({ data: Buffer.from('1'), contentType: 'text/plain', fileName: 'a.txt' });
    const hour = await store.save(
      { data: Buffer.from('2'), contentType: 'text/plain', fileName: 'b.txt' },
      { expiresInSeconds: 3600 },
    );
    await store.sweepExpired(Date.now() + 60_000);
    expect((await store.readByUrl(forever.url))?.data.toString()).toBe('1');
    expect((await store.readByUrl(hour.url))?.data.toString()).toBe('2');
  });

  it('refuses an object that the URL names but that is not there', async () => {
    const store = storeWith();
    const key = `pre/fix/files/0/${randomUUID()}/gone.txt`;
    await weed.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'unrelated', Body: 'x' }));
    await expect(store.readByUrl(`${weed.endpoint}/${bucket}/${key}`)).rejects.toThrow(/not in the store/);
  });
});
