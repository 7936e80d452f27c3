// One JSON object per line on stderr: what log shippers expect. The SDK adds workflowId,
// runId, activityType and friends to workflow and activity log lines by itself; nothing in
// this service logs arguments, results or env values, and errors are reduced to name and
// message (ours are written to be safe; stacks stay out of the log).
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';

export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

export class JsonLogger implements Logger {
  private readonly min: number;

  constructor(
    level: LogLevel = 'INFO',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly base: LogMetadata = {},
  ) {
    this.min = LOG_LEVELS.indexOf(level);
  }

  log(level: LogLevel, message: string, meta: LogMetadata = {}): void {
    if (LOG_LEVELS.indexOf(level) < this.min) return;
    const record = { time: new Date().toISOString(), level: level.toLowerCase(), msg: message, ...this.base, ...meta };
    this.write(`${JSON.stringify(record, replacer)}\n`);
  }

  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

function replacer(this: unknown, key: string, value: unknown): unknown {
  // The SDK's timestamp in nanoseconds duplicates `time` and is a bigint JSON cannot hold.
  if (key === 'timestampNanos') return undefined;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message.split('\n')[0]?.slice(0, 500) };
  return value;
}
