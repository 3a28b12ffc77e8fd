/**
 * The worker process's entry point (`node dist/worker.js`): loads the configuration and runs the workers of
 * {@link startWorkers} until SIGINT/SIGTERM. What it runs is built in `worker-set.ts`.
 */
import { loadConfig } from './config';
import { createLogger } from './logger';
import { ModelRegistry } from './models/registry';
import { installTemporalRuntime } from './temporal/runtime';
import { startWorkers } from './worker-set';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel, 'worker');
  installTemporalRuntime(logger);
  const registry = ModelRegistry.load(config.modelsFile, process.env);
  const running = await startWorkers(config, registry, logger);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down workers');
      void running.stop();
    });
  }
  await running.done;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
