import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInputFetcher, InputFetchError } from '../../src/models/input-files';
import { LocalFileStore } from '../../src/storage/local-file-store';

/**
 * Runners sharing the API's DATA_DIR read the API's own file URLs from disk: uploads reach a model without opening
 * the egress allow-list to the API's (private) address for every tenant.
 */
describe('local store: file URLs read directly by runners', () => {
  const dir = mkdtempSync(join(tmpdir(), 'local-urls-'));
  const store = new LocalFileStore(join(dir, 'files'), 'http://10.0.0.5:8080');
  // The default egress policy: public addresses only, so 10.0.0.5 and 127.0.0.1 are refused over HTTP.
  const fetchInput = createInputFetcher({
    maxBytes: 1024,
    timeoutMs: 5000,
    readStoreFile: (url) => store.readByUrl(url),
  });

  it('an uploaded file is read from the store, whatever host name the client used', async () => {
    const saved = await store.save({ data: Buffer.from('uploaded'), contentType: 'text/plain', fileName: 'a.txt' });
    expect(await fetchInput(saved.url, new AbortController().signal)).toEqual({
      data: Buffer.from('uploaded'),
      contentType: 'text/plain',
    });
    const path = new URL(saved.url).pathname;
    const viaOtherHost = await fetchInput(`http://api.internal${path}`, new AbortController().signal);
    expect(viaOtherHost.data.toString()).toBe('uploaded');
  });

  it('the size limit applies to store files too', async () => {
    const saved = await store.save({
      data: Buffer.alloc(2048),
      contentType: 'application/octet-stream',
      fileName: 'b',
    });
    await expect(fetchInput(saved.url, new AbortController().signal)).rejects.toThrow(InputFetchError);
  });

  it('any other URL still goes through the egress guard, which refuses private addresses', async () => {
    await expect(
      fetchInput('http://127.0.0.1:9/files/00000000-0000-4000-8000-000000000000/x.txt', new AbortController().signal),
    ).rejects.toThrow(/127\.0\.0\.1|refused|not allowed|private|loopback/i);
  });
});
