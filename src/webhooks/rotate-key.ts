import { loadConfig } from '../config';
import { WebhookKeys } from './keys';

/**
 * `npm run webhook-key:rotate`: adds a new Ed25519 signing key to WEBHOOK_KEYS_DIR. It signs from
 * the next delivery on (the API and the workers notice the new file without a restart); older keys
 * stay in the JWKS until their files are deleted, so receivers can verify deliveries already sent.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const kid = await WebhookKeys.rotate(config.webhook.keysDir);
  const keys = await WebhookKeys.open(config.webhook.keysDir);
  const { keys: published } = await keys.jwks();
  console.log(`new signing key ${kid} in ${config.webhook.keysDir}; the JWKS now publishes ${published.length} key(s)`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
