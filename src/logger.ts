import pino, { type Logger } from 'pino';

/** The process logger: JSON lines on stdout, one field per fact (request_id, model_id, ...). */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, base: { pid: process.pid } });
}
