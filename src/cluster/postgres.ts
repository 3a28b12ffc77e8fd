/**
 * A throwaway PostgreSQL for the cluster topology: the Debian `postgresql` package's binaries, a
 * cluster created with `initdb` in a directory of the project, listening on loopback only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { acceptsTcp } from '../temporal/net';
import { runCommand, spawnService, type ServiceProcess } from './service-process';

/** Where and how {@link Postgres} runs. */
export interface PostgresOptions {
  /** Holds `data/`, `run/` (socket) and `log/`; created if missing, owned by the `postgres` user when we are root. */
  dir: string;
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Superuser created by `initdb`, the one the Temporal server connects as. */
  user: string;
  password: string;
  /**
   * Server connections; the Temporal server opens about 44 with its default pools, the schema tool a few more.
   * @default 200
   */
  maxConnections?: number;
  log: (line: string) => void;
}

/** The account Debian's package runs PostgreSQL as; `initdb` and `postgres` refuse to run as root. */
const POSTGRES_ACCOUNT = 'postgres';

/**
 * One PostgreSQL server process, started in the foreground as our child (so Ctrl-C, a crash of ours or a kill -9 in
 * the chaos run reaches it directly), on a data directory that survives restarts.
 */
export class Postgres {
  private process: ServiceProcess | undefined;
  private readonly dataDir: string;
  private readonly socketDir: string;
  private readonly logDir: string;

  private constructor(
    private readonly options: PostgresOptions,
    private readonly binDir: string,
    private readonly account: { uid: number; gid: number } | undefined,
  ) {
    this.dataDir = join(options.dir, 'data');
    this.socketDir = join(options.dir, 'run');
    this.logDir = join(options.dir, 'log');
  }

  /** Finds (or installs, as root on Debian) the binaries and creates the database cluster when it does not exist. */
  static async prepare(options: PostgresOptions): Promise<Postgres> {
    const binDir = findPostgresBinDir() ?? installPostgres(options.log);
    const account = process.getuid?.() === 0 ? accountOf(POSTGRES_ACCOUNT) : undefined;
    const pg = new Postgres({ ...options, dir: resolve(options.dir) }, binDir, account);
    await pg.init();
    return pg;
  }

  /** `postgres://user:password@127.0.0.1:port` without a database. */
  get url(): string {
    return `postgres://${this.options.user}:${encodeURIComponent(this.options.password)}@127.0.0.1:${this.options.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Starts the server and resolves once it accepts TCP connections. */
  async start(): Promise<void> {
    // A server left running by a previous run that was killed holds the data directory (postmaster.pid).
    await this.stopLeftover();
    const args = [
      '-D',
      this.dataDir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `port=${this.options.port}`,
      '-c',
      `unix_socket_directories=${this.socketDir}`,
      '-c',
      `max_connections=${this.options.maxConnections ?? 200}`,
      // A throwaway cluster on a shared CI machine: durability of each commit still holds (fsync on), only the
      // checkpoint spread is shortened so a restart replays less.
      '-c',
      'checkpoint_timeout=60s',
      '-c',
      'logging_collector=off',
    ];
    this.process = spawnService({
      name: 'postgres',
      command: join(this.binDir, 'postgres'),
      args,
      readyText: 'database system is ready to accept connections',
      uid: this.account?.uid,
      gid: this.account?.gid,
      // Its log is chatty (every connection a restart cuts); the file has it, errors show the tail.
      logFile: join(this.logDir, 'postgres.log'),
    });
    await this.process.ready;
    for (let i = 0; !(await acceptsTcp('127.0.0.1', this.options.port, 1000)); i++) {
      if (i > 50) throw new Error(`PostgreSQL is ready but 127.0.0.1:${this.options.port} refuses connections`);
    }
  }

  /** Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit). */
  async stop(): Promise<void> {
    await this.process?.stop(30_000, 'SIGINT');
    this.process = undefined;
  }

  /** A clean restart, as an operator's `systemctl restart postgresql` would do it. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private async init(): Promise<void> {
    for (const dir of [this.options.dir, this.socketDir, this.logDir]) await this.ownedDir(dir);
    this.checkReachable(this.options.dir);
    if (existsSync(join(this.dataDir, 'PG_VERSION'))) return;
    this.options.log(`[postgres] creating a database cluster in ${this.dataDir}`);
    await rm(this.dataDir, { recursive: true, force: true });
    await this.ownedDir(this.dataDir, 0o700);
    // initdb reads the superuser's password from a file; it is removed right after.
    const pwfile = join(this.options.dir, '.pwfile');
    await writeFile(pwfile, `${this.options.password}\n`, { mode: 0o600 });
    if (this.account) await chown(pwfile, this.account.uid, this.account.gid);
    try {
      await runCommand(
        join(this.binDir, 'initdb'),
        [
          '-D',
          this.dataDir,
          '--username',
          this.options.user,
          '--pwfile',
          pwfile,
          // Password checks for TCP (loopback only); the socket lives in a directory only the account can enter.
          '--auth-host=scram-sha-256',
          '--auth-local=peer',
          '--encoding=UTF8',
          '--locale=C',
        ],
        { uid: this.account?.uid, gid: this.account?.gid, log: (line) => this.options.log(`[initdb] ${line}`) },
      );
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  private async ownedDir(dir: string, mode = 0o755): Promise<void> {
    await mkdir(dir, { recursive: true });
    await chmod(dir, mode);
    if (this.account) await chown(dir, this.account.uid, this.account.gid);
  }

  /** The `postgres` account must be able to walk down to its directories; a home directory often stops it. */
  private checkReachable(dir: string): void {
    if (!this.account) return;
    try {
      // Starting a process inside `dir` as that account needs search permission on every ancestor.
      execFileSync(join(this.binDir, 'postgres'), ['--version'], { cwd: dir, ...this.account, stdio: 'ignore' });
    } catch {
      throw new Error(
        `the ${POSTGRES_ACCOUNT} user cannot reach ${dir} (a parent directory without o+x?): ` +
          'run from a clone it can reach, or set CLUSTER_DATA_DIR to a directory it can',
      );
    }
  }

  private async stopLeftover(): Promise<void> {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
    this.options.log(`[postgres] stopping a server left running by an earlier run (pid ${pid})`);
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 300 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Debian keeps the versioned server binaries off PATH, in /usr/lib/postgresql/<major>/bin; the newest wins. */
export function findPostgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const major of majors) {
    const bin = join(root, major, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres'))) return bin;
  }
  try {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(bin, 'initdb'))) return bin;
  } catch {
    // No pg_config either: not installed.
  }
  return undefined;
}

/** As .ci/run installs docker-compose: apt-get, as root on Debian; anything else gets instructions. */
function installPostgres(log: (line: string) => void): string {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error(
      'PostgreSQL is not installed: apt-get install postgresql (Debian/Ubuntu), or install PostgreSQL 12+ so that ' +
        'initdb and postgres are in /usr/lib/postgresql/<version>/bin or pg_config --bindir',
    );
  }
  log('[postgres] installing the Debian postgresql package (apt-get, once) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'postgresql'], { stdio: 'inherit', env });
  // The package creates and starts a `main` cluster on port 5432 through systemd where there is one; ours is apart.
  const bin = findPostgresBinDir();
  if (!bin) throw new Error('apt-get installed postgresql but no initdb was found under /usr/lib/postgresql');
  return bin;
}

function accountOf(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(`no ${name} user: install the Debian postgresql package, which creates it`);
  }
  return { uid: Number(uid), gid: Number(gid) };
}
