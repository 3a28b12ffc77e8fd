/**
 * Pinned, cached builds of Go programs (SeaweedFS for the storage tests, the Temporal server for the cluster suite).
 *
 * Node built-ins only, so it can run from scripts before anything else is set up. A build lands in a per-user cache
 * directory outside the clone, keyed by name and version, so every worktree and every fresh clone shares it and a
 * second call returns at once. Run directly for a command-line install:
 * `node --import tsx src/tools/go-binary.ts <name> <modulePath> <version> <pkg> [install|main-module] [tags]`.
 */
import { chmod, cp, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { acquireInstallLock, errorMessage, executableName, isExecutableFile, runCommand } from './cached-install';

/**
 * How to build the binary.
 * - `install`: `go install module/pkg@version`, for modules that build as a dependency.
 * - `main-module`: download the module source and `go build` inside it, for modules whose `go.mod` has `replace`
 *   directives (which `go install pkg@version` refuses), such as SeaweedFS.
 */
export const GoBuildMode = { Install: 'install', MainModule: 'main-module' } as const;
export type GoBuildMode = (typeof GoBuildMode)[keyof typeof GoBuildMode];

/** What {@link ensureGoBinary} builds and where it reports progress. */
export interface EnsureGoBinaryOptions {
  /** Executable name, and the cache directory's prefix (e.g. `weed`). */
  name: string;
  /** Go module path (e.g. `github.com/seaweedfs/seaweedfs`). */
  modulePath: string;
  /** Exact module version, a tag or a pseudo-version; part of the cache key, so a new version builds anew. */
  version: string;
  /** Package inside the module that holds `main`, relative (e.g. `./weed` or `weed`); `.` for the module root. */
  pkg: string;
  /** See {@link GoBuildMode}. */
  mode: GoBuildMode;
  /** Go build tags (`-tags a,b`); part of the cache key. */
  tags?: readonly string[];
  /**
   * Environment for `go` and for the cache location (`XDG_CACHE_HOME`, `GO_BINARY_CACHE_DIR`).
   * @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /**
   * Receives progress lines; a cold build takes minutes.
   * @default writes to stderr
   */
  log?: (line: string) => void;
}

/** Thrown when Go is missing or the build fails; the message says what to do. */
export class GoBinaryError extends Error {
  override name = 'GoBinaryError';
}

// A cold SeaweedFS build takes about 4 minutes on 2 cores; a peer building for longer than this is stuck.
const LOCK_WAIT_MS = 30 * 60_000;
const HEARTBEAT_MS = 20_000;

/**
 * Directory that holds the cached builds: `GO_BINARY_CACHE_DIR` if set, else
 * `${XDG_CACHE_HOME:-~/.cache}/fal-queue-temporal/bin`.
 */
export function goBinaryCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GO_BINARY_CACHE_DIR) return resolve(env.GO_BINARY_CACHE_DIR);
  const base = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'fal-queue-temporal', 'bin');
}

/** The absolute path {@link ensureGoBinary} returns for these options, whether or not it is built yet. */
export function goBinaryPath(options: Pick<EnsureGoBinaryOptions, 'name' | 'version' | 'tags' | 'env'>): string {
  return join(goBinaryCacheRoot(options.env ?? process.env), cacheKey(options), executableName(options.name));
}

/**
 * Returns the absolute path of a cached build of `modulePath/pkg@version`, building it first when missing.
 *
 * The build runs in a temporary directory beside the cache entry and is renamed into place when complete, so a
 * crashed or interrupted build never leaves a half-written binary where a later call would trust it. Concurrent
 * callers (in this process or others) wait on a lock file and then reuse the finished build.
 *
 * @throws {@link GoBinaryError} when `go` is not installed or the build fails.
 */
export async function ensureGoBinary(options: EnsureGoBinaryOptions): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const root = goBinaryCacheRoot(env);
  const finalDir = join(root, cacheKey(options));
  const binary = join(finalDir, executableName(options.name));
  if (await isExecutableFile(binary)) return binary;

  await mkdir(root, { recursive: true });
  const release = await acquireInstallLock(join(root, `${cacheKey(options)}.lock`), {
    task: `building ${options.name}`,
    waitMs: LOCK_WAIT_MS,
    pollMs: 1000,
    log,
    timeoutError: (message) => new GoBinaryError(message),
  });
  try {
    // Another process may have finished while this one waited for the lock.
    if (await isExecutableFile(binary)) return binary;
    const go = await findGo(env);
    const work = await mkdtemp(join(root, `.${cacheKey(options)}.tmp-`));
    try {
      const outDir = join(work, 'out');
      await mkdir(outDir);
      const started = Date.now();
      log(
        `Building ${options.name} (${options.modulePath}@${options.version}) with Go, once; this can take minutes ...`,
      );
      const heartbeat = () =>
        `Still building ${options.name} (${Math.round((Date.now() - started) / 1000)} s so far) ...`;
      if (options.mode === GoBuildMode.Install) {
        await buildWithInstall(go, options, env, outDir, log, heartbeat);
      } else {
        await buildAsMainModule(go, options, env, work, outDir, log, heartbeat);
      }
      const built = join(outDir, executableName(options.name));
      if (!(await isExecutableFile(built))) {
        const found = await readdir(outDir);
        throw new GoBinaryError(
          `go finished but ${built} is missing (built: ${found.join(', ') || 'nothing'}); check name and pkg`,
        );
      }
      await rm(finalDir, { recursive: true, force: true });
      // Same file system (both under root), so the rename is atomic: readers see no binary or a whole one.
      await rename(outDir, finalDir);
      log(`Built ${options.name} in ${Math.round((Date.now() - started) / 1000)} s: ${binary}`);
      return binary;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    await release();
  }
}

async function buildWithInstall(
  go: string,
  options: EnsureGoBinaryOptions,
  env: NodeJS.ProcessEnv,
  outDir: string,
  log: (line: string) => void,
  heartbeat: () => string,
): Promise<void> {
  const pkg = options.pkg.replace(/^\.\/?/, '');
  const target = pkg ? `${options.modulePath}/${pkg}@${options.version}` : `${options.modulePath}@${options.version}`;
  await run(
    go,
    ['install', ...tagArgs(options.tags), target],
    goEnv(env, { GOBIN: outDir }),
    undefined,
    log,
    heartbeat,
  );
}

async function buildAsMainModule(
  go: string,
  options: EnsureGoBinaryOptions,
  env: NodeJS.ProcessEnv,
  work: string,
  outDir: string,
  log: (line: string) => void,
  heartbeat: () => string,
): Promise<void> {
  const module = `${options.modulePath}@${options.version}`;
  log(`Downloading ${module} ...`);
  const output = await run(go, ['mod', 'download', '-json', module], goEnv(env), undefined, () => {}, heartbeat);
  let dir: unknown;
  try {
    dir = (JSON.parse(output) as { Dir?: unknown; Error?: unknown }).Dir;
  } catch {
    throw new GoBinaryError(`go mod download -json ${module} printed no JSON: ${output.slice(0, 500)}`);
  }
  if (typeof dir !== 'string') throw new GoBinaryError(`go mod download -json ${module} gave no Dir: ${output}`);
  // The module cache is read-only; the build writes nothing into the source, but go refuses some read-only trees
  // (vendor checks, embedded generated files), so build from a writable copy.
  const src = join(work, 'src');
  log(`Copying the module source to ${src} ...`);
  await cp(dir, src, { recursive: true });
  await makeWritable(src);
  const pkg = options.pkg.startsWith('.') ? options.pkg : `./${options.pkg}`;
  const bin = join(outDir, executableName(options.name));
  await run(go, ['build', ...tagArgs(options.tags), '-o', bin, pkg], goEnv(env), src, log, heartbeat);
}

function goEnv(env: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // Static binaries: no C toolchain needed, and the binary runs on any Linux of the same architecture.
  return { ...env, CGO_ENABLED: '0', GOFLAGS: env.GOFLAGS ?? '', ...extra };
}

function tagArgs(tags: readonly string[] | undefined): string[] {
  return tags && tags.length > 0 ? ['-tags', tags.join(',')] : [];
}

function cacheKey(options: Pick<EnsureGoBinaryOptions, 'name' | 'version' | 'tags'>): string {
  const tags = options.tags && options.tags.length > 0 ? `+${[...options.tags].sort().join('+')}` : '';
  // Versions and tags only hold [A-Za-z0-9.+-_]; anything else is replaced so the key is one path segment.
  return `${options.name}-${options.version}${tags}`.replace(/[^A-Za-z0-9._+-]/g, '_');
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(path);
    else if (entry.isFile()) await chmod(path, 0o644);
  }
}

async function findGo(env: NodeJS.ProcessEnv): Promise<string> {
  const candidates = [env.GO, ...(env.PATH ?? '').split(':').map((d) => d && join(d, 'go')), '/usr/local/go/bin/go'];
  for (const candidate of candidates) {
    if (candidate && (await isExecutableFile(candidate))) return candidate;
  }
  throw new GoBinaryError('go not found on PATH (or in /usr/local/go/bin): install Go 1.24+ from https://go.dev/dl/');
}

/** Runs a `go` command via {@link runCommand}, in a scratch directory unless told otherwise. */
async function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
  log: (line: string) => void,
  heartbeat: () => string,
): Promise<string> {
  try {
    // stdout is captured because `go mod download -json` prints its result there; stderr carries go's progress.
    return await runCommand(command, args, {
      env,
      cwd: cwd ?? tmpdir(),
      log,
      prefix: '[go] ',
      stdout: 'capture',
      heartbeat: { every: HEARTBEAT_MS, line: heartbeat },
      tailLines: 30,
    });
  } catch (err) {
    throw new GoBinaryError(errorMessage(err));
  }
}

async function main(argv: string[]): Promise<void> {
  const [name, modulePath, version, pkg, mode = GoBuildMode.Install, tags] = argv;
  if (!name || !modulePath || !version || !pkg || (mode !== GoBuildMode.Install && mode !== GoBuildMode.MainModule)) {
    process.stderr.write('usage: go-binary <name> <modulePath> <version> <pkg> [install|main-module] [tag,tag]\n');
    process.exitCode = 2;
    return;
  }
  const path = await ensureGoBinary({ name, modulePath, version, pkg, mode, tags: tags ? tags.split(',') : undefined });
  process.stdout.write(`${path}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
