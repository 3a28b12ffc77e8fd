import {
  createHash,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { link, mkdir, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
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
const KEY_SUFFIX = '.pem';

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
  private cache: { mtimeMs: number; keys: LoadedKey[] } | undefined;

  private constructor(
    readonly dir: string,
    private readonly masterSecret: Buffer,
  ) {}

  /** Opens the directory, generating the master secret and a first key pair if they are missing. */
  static async open(dir: string): Promise<WebhookKeys> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let secretText = await readFile(join(dir, MASTER_SECRET_FILE), 'utf8').catch(ifMissing(undefined));
    if (secretText === undefined) {
      await createExclusive(dir, MASTER_SECRET_FILE, `${randomBytes(32).toString('base64')}\n`);
      secretText = await readFile(join(dir, MASTER_SECRET_FILE), 'utf8');
    }
    const masterSecret = Buffer.from(secretText.trim(), 'base64');
    if (masterSecret.length < 16) {
      throw new WebhookKeyError(`${join(dir, MASTER_SECRET_FILE)} must hold at least 16 base64-encoded bytes`);
    }
    const keys = new WebhookKeys(dir, masterSecret);
    if ((await keyFiles(dir)).length === 0) await WebhookKeys.rotate(dir);
    await keys.load();
    return keys;
  }

  /**
   * Adds a new Ed25519 key pair that signs from now on; older keys stay published in the JWKS until
   * their files are deleted. Returns the new key's `kid`.
   */
  static async rotate(dir: string, now = new Date()): Promise<string> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    const kid = thumbprint(privateKey);
    // A millisecond timestamp makes names sort in creation order (the last one signs); a clock that
    // went back, or a second rotation within the same millisecond, moves it just past the last key.
    const last = (await keyFiles(dir)).at(-1);
    let at = now.getTime();
    if (last !== undefined && stampOf(at) <= last) {
      const lastAt = timeOfStamp(last);
      if (lastAt === undefined) {
        throw new WebhookKeyError(`${join(dir, last)} sorts after any generated key name: rename it to rotate`);
      }
      at = Math.max(at, lastAt + 1);
    }
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    await createExclusive(dir, `${stampOf(at)}-${kid.slice(0, 12)}${KEY_SUFFIX}`, pem);
    return kid;
  }

  /** The key that signs deliveries now. */
  async signingKey(): Promise<SigningKey> {
    const keys = await this.load();
    const current = keys.at(-1)!;
    return { kid: current.kid, privateKey: current.privateKey };
  }

  /** Every public key, newest (the signing one) first. */
  async jwks(): Promise<{ keys: Ed25519Jwk[] }> {
    const keys = await this.load();
    return { keys: keys.map((k) => k.jwk).reverse() };
  }

  /** The owner's Standard Webhooks secret (`whsec_<base64>`), derived from the master secret. */
  ownerSecret(owner: string): string {
    const key = createHmac('sha256', this.masterSecret).update(`standard-webhooks owner:${owner}`).digest();
    return `whsec_${key.toString('base64')}`;
  }

  private async load(): Promise<LoadedKey[]> {
    const { mtimeMs } = await stat(this.dir);
    if (this.cache?.mtimeMs === mtimeMs) return this.cache.keys;
    const names = await keyFiles(this.dir);
    if (names.length === 0) throw new WebhookKeyError(`${this.dir} holds no Ed25519 key (*${KEY_SUFFIX})`);
    const keys = await Promise.all(names.map((name) => loadKey(join(this.dir, name))));
    this.cache = { mtimeMs, keys };
    return keys;
  }
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
