import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LocalFileStore } from '../../src/storage/local-file-store';

const BASE = 'http://files.example';

/**
 * A store on a clock the test moves by hand (`clock.time += ms`): expiry is decided by that clock alone, so "a second
 * later" means exactly that, on any machine, and no test waits in real time.
 */
function newStore(options: ConstructorParameters<typeof LocalFileStore>[2] = {}) {
  const dir = mkdtempSync(join(process.env.TEST_TMP_DIR ?? tmpdir(), 'file-store-'));
  const clock = { time: Date.parse('2030-01-01T00:00:00Z') };
  return { dir, clock, store: new LocalFileStore(dir, BASE, { now: () => clock.time, ...options }) };
}

const idOf = (url: string) => new URL(url).pathname.split('/')[2]!;

describe('the local file store', () => {
  it('serves a saved file until its lifetime ends, then neither serves nor keeps it', async () => {
    const { dir, clock, store } = newStore();
    const saved = await store.save(
      { data: Buffer.from('short-lived'), contentType: 'text/plain', fileName: 'a.txt' },
      { expiresInSeconds: 1 },
    );
    const id = idOf(saved.url);
    clock.time += 999;
    expect((await store.read(id, 'a.txt'))?.data.toString()).toBe('short-lived');
    expect(await store.sweepExpired()).toEqual({ deleted: 0, kept: 1 });

    clock.time += 1;
    expect(await store.read(id, 'a.txt')).toBeUndefined();
    expect(existsSync(join(dir, id))).toBe(true);
    expect(await store.sweepExpired()).toEqual({ deleted: 1, kept: 0 });
    expect(existsSync(join(dir, id))).toBe(false);
  });

  it('applies the default lifetime when the writer names none, and keeps files forever with a default of 0', async () => {
    const { clock, store } = newStore({ defaultExpiresInSeconds: 3600 });
    const saved = await store.save({ data: Buffer.from('x'), contentType: 'text/plain', fileName: 'x.txt' });
    const file = await store.read(idOf(saved.url), 'x.txt');
    expect(file?.expiresAt?.getTime()).toBe(clock.time + 3600_000);

    const { store: forever } = newStore({ defaultExpiresInSeconds: 0 });
    const kept = await forever.save({ data: Buffer.from('y'), contentType: 'text/plain', fileName: 'y.txt' });
    expect((await forever.read(idOf(kept.url), 'y.txt'))?.expiresAt).toBeUndefined();
    expect(await forever.sweepExpired(Date.parse('2040-01-01T00:00:00Z'))).toEqual({ deleted: 0, kept: 1 });
  });

  it('takes an upload once, with its token only, and serves it from then on', async () => {
    const { store } = newStore();
    const slot = await store.reserveUpload({ contentType: 'image/png', fileName: 'my photo.png' });
    expect(slot.fileUrl).toBe(`${BASE}/files/${slot.fileId}/my_photo.png`);
    // Reserved but not uploaded: nothing to serve yet.
    expect(await store.read(slot.fileId, 'my_photo.png')).toBeUndefined();

    await expect(
      store.completeUpload(slot.fileId, 'wrong-token', Readable.from([Buffer.from('x')]), 100),
    ).rejects.toMatchObject({
      reason: 'not_found',
    });
    const stored = await store.completeUpload(slot.fileId, slot.token, Readable.from([Buffer.from('png-bytes')]), 100);
    expect(stored).toMatchObject({ url: slot.fileUrl, content_type: 'image/png', file_size: 9 });
    expect((await store.read(slot.fileId, 'my_photo.png'))?.data.toString()).toBe('png-bytes');

    await expect(
      store.completeUpload(slot.fileId, slot.token, Readable.from([Buffer.from('again')]), 100),
    ).rejects.toMatchObject({
      reason: 'already_uploaded',
    });
    expect((await store.read(slot.fileId, 'my_photo.png'))?.data.toString()).toBe('png-bytes');
  });

  it('refuses an upload over the limit and leaves no partial file behind', async () => {
    const { dir, store } = newStore();
    const slot = await store.reserveUpload({ contentType: 'application/octet-stream', fileName: 'big.bin' });
    const body = Readable.from([Buffer.alloc(60), Buffer.alloc(60)]);
    await expect(store.completeUpload(slot.fileId, slot.token, body, 100)).rejects.toMatchObject({
      reason: 'too_large',
    });
    expect((await readdir(join(dir, slot.fileId))).filter((f) => !f.startsWith('meta'))).toEqual([]);
    // The slot is still open: a retry within the limit succeeds.
    const retry = await store.completeUpload(slot.fileId, slot.token, Readable.from([Buffer.alloc(50)]), 100);
    expect(retry.file_size).toBe(50);
  });

  it('starts an upload’s lifetime when its bytes arrive, and sweeps a slot that was never used', async () => {
    const { dir, clock, store } = newStore({ uploadWindowSeconds: 1 });
    const used = await store.reserveUpload(
      { contentType: 'text/plain', fileName: 'u.txt' },
      { expiresInSeconds: 3600 },
    );
    const unused = await store.reserveUpload({ contentType: 'text/plain', fileName: 'n.txt' });
    await store.completeUpload(used.fileId, used.token, Readable.from([Buffer.from('u')]), 10);

    clock.time += 1000;
    await expect(
      store.completeUpload(unused.fileId, unused.token, Readable.from([Buffer.from('n')]), 10),
    ).rejects.toMatchObject({
      reason: 'not_found',
    });
    expect(await store.sweepExpired()).toEqual({ deleted: 1, kept: 1 });
    expect(existsSync(join(dir, unused.fileId))).toBe(false);
    expect((await store.read(used.fileId, 'u.txt'))?.data.toString()).toBe('u');
  });

  it('sweeps claim-checked payloads past their retention, even in a process that has stored no file yet', async () => {
    // A control worker claim-checks payloads long before (or without ever) saving a file: no files directory.
    const root = mkdtempSync(join(process.env.TEST_TMP_DIR ?? tmpdir(), 'payload-sweep-'));
    const store = new LocalFileStore(join(root, 'files'), BASE, {
      payloadsDir: join(root, 'payloads'),
      payloadRetentionSeconds: 60,
    });
    const sha = createHash('sha256').update('payload').digest('hex');
    await store.payloads.put(sha, Buffer.from('payload'));

    // Payload age is the file's mtime, so the sweeps are placed relative to the real time of the write.
    const written = Date.now();
    expect(await store.sweepExpired(written)).toEqual({ deleted: 0, kept: 1 });
    expect(await store.sweepExpired(written + 61_000)).toEqual({ deleted: 1, kept: 0 });
    expect(await store.payloads.get(sha)).toBeUndefined();
    expect(existsSync(join(root, 'files'))).toBe(false);
  });

  it('never reads outside its directory, whatever the id and name', async () => {
    const { store } = newStore();
    const saved = await store.save({ data: Buffer.from('x'), contentType: 'text/plain', fileName: '../../etc/passwd' });
    expect(saved.file_name).toBe('_.._etc_passwd');
    expect(await store.read('../..', 'etc/passwd')).toBeUndefined();
    expect(await store.read(idOf(saved.url), 'meta.json')).toBeUndefined();
  });
});
