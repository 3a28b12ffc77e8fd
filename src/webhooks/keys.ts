import {
  createHash,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { link, mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One public key of the JWKS at `/.well-known/jwks.json`. */
export interface Ed25519Jwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  use: 'sig';
  alg: 'EdDSA';
}

/** The Ed25519 key that signs deliveries now. */
export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
}

/** Thrown when the key directory holds something that is not a usable key; the message names the file. */
export class WebhookKeyError extends Error {
  override name = 'WebhookKeyError';
}

const MASTER_SECRET_FILE = 'standard-webhooks.secret';
/** A master secret staged by `rotate-key prepare --secret`: signs beside the current one until activated. */
const NEXT_SECRET_FILE = 'standard-webhooks.next.secret';
const KEY_SUFFIX = '.pem';
/** A key staged by `rotate-key prepare`: published in the JWKS, not signing until activated. */
const STAGED_SUFFIX = '.next.pem';

/**
 * How long receivers may cache the JWKS (`/.well-known/jwks.json` says `max-age=300`): a staged key
 * must have been published this long before it may sign.
 */
export const JWKS_MAX_AGE_SECONDS = 300;

/** An owner's Standard Webhooks secrets: the current one and, while a rotation overlaps, the next. */
export interface OwnerSecrets {
  secret: string;
  next?: string;
}

interface LoadedKey extends SigningKey {
  jwk: Ed25519Jwk;
}

/**
 * The webhook signing material, kept in one directory (`WEBHOOK_KEYS_DIR`) that the API and the
 * workers share:
 * - Ed25519 private keys, one PKCS#8 PEM file each (`*.pem`). The file whose name sorts last signs;
 *   every one is published in the JWKS, so rotating (adding a newer file) keeps old signatures verifiable.
 * - `standard-webhooks.secret`: the master secret every owner's `whsec_` secret is derived from.
 *
 * Missing material is generated on first start; an operator who mounts the directory with their own
 * files gives the keys by configuration. The directory is read again whenever it changes, so a
 * rotation takes effect without a restart.
 */
export class WebhookKeys {
  private cache: { mtimeMs: number; keys: LoadedKey[]; staged: LoadedKey[] } | undefined;
  /** The look at the directory in flight: deliveries signed together share it (one `stat` instead of one each). */
  private loading: Promise<{ keys: LoadedKey[]; staged: LoadedKey[] }> | undefined;
  private nextMasterSecret: Buffer | undefined;

  private constructor(
    readonly dir: string,
    private masterSecret: Buffer,
  ) {}

  /** Opens the directory, generating the master secret and a first key pair if they are missing. */
  static async open(dir: string): Promise<WebhookKeys> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let secretText = await readFile(join(dir, MASTER_SECRET_FILE), 'utf8').catch(ifMissing(undefined));
    if (secretText === undefined) {
      await createExclusive(dir, MASTER_SECRET_FILE, `${randomBytes(32).toString('base64')}\n`);
      secretText = await readFile(join(dir, MASTER_SECRET_FILE), 'utf8');
    }
    const keys = new WebhookKeys(dir, parseSecret(join(dir, MASTER_SECRET_FILE), secretText));
    if ((await keyFiles(dir)).length === 0) await WebhookKeys.rotate(dir);
    await keys.load();
    return keys;
  }

  /**
   * Adds a new Ed25519 key pair that signs from now on; older keys stay published in the JWKS until
   * their files are deleted. Returns the new key's `kid`. One step: receivers holding a cached JWKS
   * cannot verify it for up to {@link JWKS_MAX_AGE_SECONDS}; rotations of a running service use
   * {@link prepareRotation} and {@link activateRotation}.
   */
  static async rotate(dir: string, now = new Date()): Promise<string> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return generateKey(dir, now, KEY_SUFFIX);
  }

  /**
   * First step of a rotation without a gap: stages a new Ed25519 key (published in the JWKS, not
   * signing) and, with `secret`, a new master secret (signing beside the current one, so every
   * delivery carries both `v1` signatures). {@link activateRotation} completes it. Returns the kid.
   */
  static async prepareRotation(dir: string, options: { now?: Date; secret?: boolean } = {}): Promise<string> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const staged = (await readdir(dir)).filter((name) => name.endsWith(STAGED_SUFFIX));
    if (staged.length > 0) throw new WebhookKeyError(`${join(dir, staged[0]!)} is staged already: activate it first`);
    if (options.secret) await createExclusive(dir, NEXT_SECRET_FILE, `${randomBytes(32).toString('base64')}\n`);
    return generateKey(dir, options.now ?? new Date(), STAGED_SUFFIX);
  }

  /**
   * Second step: the staged key signs from now on (older keys stay published until their files are
   * deleted) and a staged master secret replaces the current one. Refused while the staged key has
   * been published for less than `minPublishedSeconds`, since receivers' cached JWKS would not know it.
   */
  static async activateRotation(
    dir: string,
    options: { now?: Date; minPublishedSeconds?: number } = {},
  ): Promise<string> {
    const now = options.now ?? new Date();
    const minMs = (options.minPublishedSeconds ?? JWKS_MAX_AGE_SECONDS) * 1000;
    const staged = (await readdir(dir)).filter((name) => name.endsWith(STAGED_SUFFIX));
    if (staged.length === 0) throw new WebhookKeyError(`${dir} holds no staged key: run prepare first`);
    const name = staged[0]!;
    const publishedAt = timeOfStamp(name) ?? (await stat(join(dir, name))).mtimeMs;
    const waitMs = publishedAt + minMs - now.getTime();
    if (waitMs > 0) {
      throw new WebhookKeyError(
        `${name} has been published for less than ${minMs / 1000} s (receivers cache the JWKS): try again in ${Math.ceil(waitMs / 1000)} s`,
      );
    }
    const pem = await readFile(join(dir, name), 'utf8');
    const kid = await writeKey(dir, now, pem, KEY_SUFFIX);
    await unlink(join(dir, name));
    await rename(join(dir, NEXT_SECRET_FILE), join(dir, MASTER_SECRET_FILE)).catch(ifMissing(undefined));
    return kid;
  }

  /** The key that signs deliveries now. */
  async signingKey(): Promise<SigningKey> {
    const { keys } = await this.load();
    const current = keys.at(-1)!;
    return { kid: current.kid, privateKey: current.privateKey };
  }

  /** Every public key: the signing one first, then a staged one, then older ones. */
  async jwks(): Promise<{ keys: Ed25519Jwk[] }> {
    const { keys, staged } = await this.load();
    const [signing, ...older] = keys.map((k) => k.jwk).reverse();
    return { keys: [signing!, ...staged.map((k) => k.jwk), ...older] };
  }

  /** The owner's Standard Webhooks secret (`whsec_<base64>`), derived from the master secret. */
  ownerSecret(owner: string): string {
    return deriveOwnerSecret(this.masterSecret, owner);
  }

  /** The owner's current secret and, while a secret rotation is staged, the next one; read afresh. */
  async ownerSecrets(owner: string): Promise<OwnerSecrets> {
    await this.load();
    const next = this.nextMasterSecret && deriveOwnerSecret(this.nextMasterSecret, owner);
    return { secret: this.ownerSecret(owner), ...(next && { next }) };
  }

  private load(): Promise<{ keys: LoadedKey[]; staged: LoadedKey[] }> {
    this.loading ??= this.reload().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async reload(): Promise<{ keys: LoadedKey[]; staged: LoadedKey[] }> {
    const { mtimeMs } = await stat(this.dir);
    if (this.cache?.mtimeMs === mtimeMs) return this.cache;
    const names = await keyFiles(this.dir);
    const active = names.filter((name) => !name.endsWith(STAGED_SUFFIX));
    if (active.length === 0) throw new WebhookKeyError(`${this.dir} holds no Ed25519 key (*${KEY_SUFFIX})`);
    const load = (list: string[]) => Promise.all(list.map((name) => loadKey(join(this.dir, name))));
    const [keys, staged] = await Promise.all([load(active), load(names.filter((n) => n.endsWith(STAGED_SUFFIX)))]);
    // The master secrets change only by rotation, which changes the directory too.
    const secretPath = join(this.dir, MASTER_SECRET_FILE);
    this.masterSecret = parseSecret(secretPath, await readFile(secretPath, 'utf8'));
    const nextPath = join(this.dir, NEXT_SECRET_FILE);
    const nextText = await readFile(nextPath, 'utf8').catch(ifMissing(undefined));
    this.nextMasterSecret = nextText === undefined ? undefined : parseSecret(nextPath, nextText);
    this.cache = { mtimeMs, keys, staged };
    return this.cache;
  }
}

function deriveOwnerSecret(master: Buffer, owner: string): string {
  const key = createHmac('sha256', master).update(`standard-webhooks owner:${owner}`).digest();
  return `whsec_${key.toString('base64')}`;
}

function parseSecret(path: string, text: string): Buffer {
  const secret = Buffer.from(text.trim(), 'base64');
  if (secret.length < 16) throw new WebhookKeyError(`${path} must hold at least 16 base64-encoded bytes`);
  return secret;
}

/** Writes a new Ed25519 key named to sort after every key in `dir`; returns its kid. */
async function generateKey(dir: string, now: Date, suffix: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  return writeKey(dir, now, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, suffix);
}

/**
 * Writes `pem` as `<stamp>-<kid>` + `suffix`. A millisecond stamp makes names sort in creation order
 * (the last one signs); a clock that went back, or a second key within the same millisecond, moves it
 * just past the last key.
 */
async function writeKey(dir: string, now: Date, pem: string, suffix: string): Promise<string> {
  const kid = thumbprint(createPrivateKey(pem));
  const last = (await keyFiles(dir)).at(-1);
  let at = now.getTime();
  if (last !== undefined && stampOf(at) <= last) {
    const lastAt = timeOfStamp(last);
    if (lastAt === undefined) {
      throw new WebhookKeyError(`${join(dir, last)} sorts after any generated key name: rename it to rotate`);
    }
    at = Math.max(at, lastAt + 1);
  }
  await createExclusive(dir, `${stampOf(at)}-${kid.slice(0, 12)}${suffix}`, pem);
  return kid;
}

/** `20261127T101853670Z`: fixed width, so names sort by time. */
function stampOf(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

function timeOfStamp(name: string): number | undefined {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(\d{3})Z/.exec(name);
  return m ? Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`) : undefined;
}

async function keyFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith(KEY_SUFFIX) && !name.startsWith('.')).sort();
}

async function loadKey(path: string): Promise<LoadedKey> {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await readFile(path, 'utf8'));
  } catch (err) {
    throw new WebhookKeyError(`${path} is not a PEM private key: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new WebhookKeyError(`${path} is a ${privateKey.asymmetricKeyType ?? 'non-asymmetric'} key, not Ed25519`);
  }
  const kid = thumbprint(privateKey);
  const { x } = privateKey.export({ format: 'jwk' });
  return { kid, privateKey, jwk: { kty: 'OKP', crv: 'Ed25519', x: x!, kid, use: 'sig', alg: 'EdDSA' } };
}

/** RFC 7638 JWK thumbprint: a `kid` that anyone can recompute from the public key. */
function thumbprint(key: KeyObject): string {
  const { x } = key.export({ format: 'jwk' });
  return createHash('sha256')
    .update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x }))
    .digest('base64url');
}

/**
 * Writes `name` only if it does not exist yet, atomically: processes starting together (API and
 * worker) never see a half-written file and never overwrite each other's.
 */
async function createExclusive(dir: string, name: string, content: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp);
  }
}

function ifMissing<T>(value: T) {
  return (err: NodeJS.ErrnoException): T => {
    if (err.code === 'ENOENT') return value;
    throw err;
  };
}
