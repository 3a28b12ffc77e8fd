/** Thrown when the environment does not describe a valid configuration; the message names each bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
