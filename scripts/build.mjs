// The library build (`npm run build`, and npm's `prepare`, which runs on `npm pack`, on `npm install
// <git url>` and on `npm ci` in this repo): a clean dist/ compiled from src/.
// Plain Node with built-ins only, like bootstrap.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// The Dockerfile installs dependencies before it copies the sources, to cache that layer; it builds later.
if (!existsSync(join(root, 'src'))) {
  console.log('build: no src/ here yet, nothing to compile');
  process.exit(0);
}

// Files a previous build left behind (a module since moved or deleted) must not reach the package.
rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
process.exitCode = result.status ?? 1;
