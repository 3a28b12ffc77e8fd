import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

const PackageJson = z.object({
  name: z.string(),
  version: z.string(),
  peerDependencies: z.record(z.string(), z.string()).default({}),
});

/**
 * The package's own name and version, read from its package.json: one directory above both `src/`
 * (running from a checkout) and `dist/` (the installed package), so no build step has to copy it.
 */
function readPackageJson(): z.infer<typeof PackageJson> {
  return PackageJson.parse(JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')));
}

const pkg = readPackageJson();

/** The version of fal-queue-temporal this process runs, e.g. `0.1.0` (the API reports it on `/healthz`). */
export const VERSION: string = pkg.version;

/** The package name, as npm knows it. */
export const PACKAGE_NAME: string = pkg.name;

/** The version range of each peer dependency (optional ones included), for install hints. */
export const PEER_RANGES: Readonly<Record<string, string>> = pkg.peerDependencies;
