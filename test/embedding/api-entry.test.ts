import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const root = join(__dirname, '..', '..');

/** Which of `modules` a fresh Node process has loaded after requiring `entry` (from source, through tsx). */
async function loadedBy(entry: string, modules: string[]): Promise<string[]> {
  const script = `require(${JSON.stringify(entry)});
const loaded = Object.keys(require.cache);
console.log(JSON.stringify(${JSON.stringify(modules)}.filter((m) => loaded.some((k) => k.includes('/node_modules/' + m + '/')))));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: root,
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as string[];
}

describe('the `fal-queue-temporal/api` entry', () => {
  it("loads neither the SDK's worker package nor its native core until a server connects on its own", async () => {
    const native = ['@temporalio/worker', '@temporalio/core-bridge'];
    expect(await loadedBy('./src/embedding/api.ts', native)).toEqual([]);
    // The check itself can fail: the package entry does load them.
    expect(await loadedBy('./src/index.ts', native)).toEqual(native);
  });
});
