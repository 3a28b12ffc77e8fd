import pino, { type Logger } from 'pino';

/**
 * The process logger: JSON lines on stdout, one field per fact (request_id, model_id, ...), for log
 * pipelines. `pretty` renders them for a person at a terminal instead (the dev launcher).
 */
export function createLogger(level: string, name: string, pretty = false): Logger {
  if (pretty) {
    return pino({
      level,
      name,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' },
      },
    });
  }
  // Written off the event loop (libuv's thread pool), lines that pile up meanwhile in one write: a synchronous write
  // per line cost a busy worker about 7 % of its CPU. pino flushes what is left when the process exits.
  return pino({ level, name, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false }));
}
