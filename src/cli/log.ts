import pino, { type Logger } from 'pino';

export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * Logs go to stderr so that stdout stays the command's output (`--json` stays parseable);
 * human-readable on a terminal, JSON lines otherwise.
 */
export function createLogger(level: LogLevel): Logger {
  if (process.stdout.isTTY) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ level }, pino.destination(2));
}
