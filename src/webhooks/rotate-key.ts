import { loadConfig } from '../config';
import { JWKS_MAX_AGE_SECONDS, WebhookKeys } from './keys';

const USAGE = `usage: webhook-key:rotate <prepare [--secret] | activate [--force] | now>
  prepare   stage a new Ed25519 key: published in the JWKS at once, signing only once activated;
            --secret also stages a new Standard Webhooks master secret (deliveries carry both signatures)
  activate  the staged key signs from now on, the staged secret replaces the current one; refused until
            the key has been published for ${JWKS_MAX_AGE_SECONDS} s (receivers cache the JWKS), unless --force
  now       one step: a new key signs at once (receivers with a cached JWKS fail to verify for up to ${JWKS_MAX_AGE_SECONDS} s)`;

/**
 * `npm run webhook-key:rotate -- <step>`: rotates the webhook signing material in WEBHOOK_KEYS_DIR
 * in two steps, so receivers never meet a signature they cannot verify (see {@link USAGE}). The API
 * and the workers notice the changed files without a restart; older keys stay in the JWKS until
 * their files are deleted.
 */
async function main(args: string[]): Promise<void> {
  const config = loadConfig(process.env);
  const dir = config.webhook.keysDir;
  const [step, ...flags] = args;
  await WebhookKeys.open(dir);
  let done: string;
  if (step === 'prepare') {
    const kid = await WebhookKeys.prepareRotation(dir, { secret: flags.includes('--secret') });
    done = `staged key ${kid}${flags.includes('--secret') ? ' and a new master secret' : ''}; activate it in ${JWKS_MAX_AGE_SECONDS} s or later`;
  } else if (step === 'activate') {
    const kid = await WebhookKeys.activateRotation(dir, flags.includes('--force') ? { minPublishedSeconds: 0 } : {});
    done = `key ${kid} signs from now on`;
  } else if (step === 'now') {
    done = `new signing key ${await WebhookKeys.rotate(dir)}`;
  } else {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const { keys: published } = await (await WebhookKeys.open(dir)).jwks();
  console.log(`${done} (${dir}); the JWKS publishes ${published.length} key(s)`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
