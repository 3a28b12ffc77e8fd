import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Routes the Temporal SDK's own logs (worker state, activity and workflow loggers) into our pino
 * logger, at WARN and above unless asked for more, and leaves signal handling to our entry points,
 * which drain workers and close connections in order.
 */
export function installTemporalRuntime(logger: Logger, level: LogLevel = 'WARN'): void {
  Runtime.install({
    shutdownSignals: [],
    logger: new DefaultLogger(level, ({ level: l, message, meta }) => {
      if (EXPECTED.has(message)) return;
      logger[PINO_LEVEL[l]](meta ?? {}, message);
    }),
  });
}

// Model runner workers have no workflows by design; the SDK warns about it on every start.
const EXPECTED = new Set(['No workflows registered, not polling for workflow tasks']);
