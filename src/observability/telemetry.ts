// The worker's Temporal runtime: JSON logs (core's own included) and, with METRICS_PORT,
// a Prometheus /metrics endpoint carrying the SDK's metrics and ours.
import { Runtime, DefaultLogger, type LogLevel, type Logger } from '@temporalio/worker';
import { ConfigError } from '../config.ts';
import { JsonLogger, LOG_LEVELS } from './json-logger.ts';
import { METRICS, PHASE_DURATION_BUCKETS } from './metric-names.ts';

export interface TelemetryConfig {
  logLevel: LogLevel;
  logFormat: 'json' | 'text';
  /** Undefined: no metrics endpoint. */
  metricsBind?: string;
  operatorGaugeIntervalMs: number;
}

export function loadTelemetryConfig(env: NodeJS.ProcessEnv = process.env): TelemetryConfig {
  const level = (env.LOG_LEVEL?.trim() || 'INFO').toUpperCase();
  if (!LOG_LEVELS.includes(level as LogLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const format = env.LOG_FORMAT?.trim() || 'json';
  if (format !== 'json' && format !== 'text') throw new ConfigError('LOG_FORMAT must be json or text');
  let metricsBind: string | undefined;
  const port = env.METRICS_PORT?.trim();
  if (port) {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535)
      throw new ConfigError('METRICS_PORT must be a port number (1-65535)');
    const host = env.METRICS_HOST?.trim() || '0.0.0.0';
    metricsBind = `${host}:${port}`;
  }
  const interval = Number(env.OPERATOR_GAUGE_INTERVAL_SECONDS?.trim() || '30');
  if (!Number.isFinite(interval) || interval <= 0) throw new ConfigError('OPERATOR_GAUGE_INTERVAL_SECONDS must be a positive number');
  return { logLevel: level as LogLevel, logFormat: format, metricsBind, operatorGaugeIntervalMs: interval * 1000 };
}

export function installRuntime(config: TelemetryConfig): Logger {
  const logger = config.logFormat === 'json' ? new JsonLogger(config.logLevel) : new DefaultLogger(config.logLevel);
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { forward: {}, filter: { core: config.logLevel, other: 'WARN' } },
      ...(config.metricsBind
        ? {
            metrics: {
              prometheus: {
                bindAddress: config.metricsBind,
                countersTotalSuffix: true,
                useSecondsForDurations: true,
                histogramBucketOverrides: { [METRICS.phaseDuration]: PHASE_DURATION_BUCKETS },
              },
            },
          }
        : {}),
    },
  });
  return logger;
}
