import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

interface Manifest {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/**
 * The installed package directories that `names` need, from `projectDir`: each one and, transitively,
 * its dependencies, optional dependencies and required peers, found as Node finds them (the nearest
 * `node_modules` up the tree). Optional peers count only if installed, as Node would load them.
 */
export function dependencyClosure(projectDir: string, names: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (fromDir: string, name: string, optional: boolean) => {
    const dir = locate(projectDir, fromDir, name);
    if (!dir) {
      if (optional) return;
      throw new Error(`${name} (needed from ${fromDir}) is not installed`);
    }
    if (seen.has(dir)) return;
    seen.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
    for (const dep of Object.keys(manifest.dependencies ?? {})) visit(dir, dep, false);
    for (const dep of Object.keys(manifest.optionalDependencies ?? {})) visit(dir, dep, true);
    for (const dep of Object.keys(manifest.peerDependencies ?? {})) {
      visit(dir, dep, manifest.peerDependenciesMeta?.[dep]?.optional === true);
    }
  };
  for (const name of names) visit(projectDir, name, false);
  return seen;
}

/** Disk usage of a package directory in bytes (as `du` counts it), without its nested `node_modules`. */
export function packageDiskBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    total += lstatSync(path).blocks * 512;
    if (entry.isDirectory()) total += packageDiskBytes(path);
  }
  return total;
}

function locate(projectDir: string, fromDir: string, name: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === projectDir || dirname(dir) === dir) return undefined;
  }
}
