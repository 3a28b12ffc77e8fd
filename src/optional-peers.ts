import { PEER_RANGES } from './version';

/**
 * Thrown when a configured feature needs an optional peer dependency that is not installed; the
 * message names the feature and gives the `npm install` line that fixes it.
 */
export class MissingPeerError extends Error {
  override name = 'MissingPeerError';
  constructor(
    readonly feature: string,
    readonly missing: readonly string[],
  ) {
    const install = missing.map((name) => (PEER_RANGES[name] ? `${name}@${PEER_RANGES[name]}` : name)).join(' ');
    super(`${feature} needs ${missing.join(', ')}: npm install ${install}`);
  }
}

/** The optional peers that a feature needs, by feature. */
export const OptionalPeers = {
  /** The built-in `esrgan` model: TensorFlow.js (about 270 MB installed), the weights and the image codecs. */
  esrgan: ['@tensorflow/tfjs', '@upscalerjs/esrgan-slim', 'jpeg-js', 'pngjs'],
  /** The API's `/docs` page. */
  swaggerUi: ['swagger-ui-dist'],
} as const;

/**
 * Checks that `packages` can be loaded from here, without loading them.
 *
 * @param feature - what needs them, as the error message starts, e.g. `model fal-ai/esrgan`
 * @param resolve - how to look a package up; tests pass one that misses
 * @throws {@link MissingPeerError} naming every package that is missing
 */
export function requirePeers(
  feature: string,
  packages: readonly string[],
  resolve: (name: string) => string = require.resolve,
): void {
  const missing = packages.filter((name) => !canResolve(name, resolve));
  if (missing.length > 0) throw new MissingPeerError(feature, missing);
}

function canResolve(name: string, resolve: (name: string) => string): boolean {
  try {
    resolve(name);
    return true;
  } catch {
    return false;
  }
}
