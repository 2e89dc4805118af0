/** The `diagnostics_channel` names the module publishes on, one message per event (see `ConcurrencyChannels`). */
export const CONCURRENCY_CHANNELS = {
  supervisor: 'nestjs-concurrency:supervisor',
  job: 'nestjs-concurrency:job',
  fanOut: 'nestjs-concurrency:fan-out',
  cache: 'nestjs-concurrency:cache',
  durable: 'nestjs-concurrency:durable',
} as const;

/** The instrumentation scope of the OpenTelemetry meter. */
export const METER_NAME = 'nestjs-concurrency';
