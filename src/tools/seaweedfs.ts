import { ensureGoBinary, GoBuildMode } from './go-binary';

/**
 * The SeaweedFS build the tests use as a real S3-compatible store. Its `go.mod` has `replace` directives, so it is
 * built as the main module (a plain `go install` is refused); a cold build takes minutes and about 220 MB.
 */
export const SEAWEEDFS = {
  name: 'weed',
  modulePath: 'github.com/seaweedfs/seaweedfs',
  version: 'v0.0.0-20261109003541-7506e5f91cd6',
  pkg: './weed',
  mode: GoBuildMode.MainModule,
} as const;

/**
 * Path of the pinned `weed` binary, built once into the per-user cache (see `ensureGoBinary`). `SEAWEEDFS_PATH`
 * points at an existing binary instead.
 */
export async function ensureSeaweedFs(
  log: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (env.SEAWEEDFS_PATH) return env.SEAWEEDFS_PATH;
  // The test setup could not build it: say why, in every suite that needs it.
  if (env.SEAWEEDFS_ERROR) throw new Error(`SeaweedFS is not available: ${env.SEAWEEDFS_ERROR}`);
  return ensureGoBinary({ ...SEAWEEDFS, env, log });
}
