import type * as OpenTelemetryApi from '@opentelemetry/api';

/** @internal The part of `@opentelemetry/api` the metrics use. */
export type OpenTelemetryApiModule = Pick<typeof OpenTelemetryApi, 'metrics' | 'createNoopMeter'>;

/**
 * @internal Loads the optional peer `@opentelemetry/api`, or undefined when it is not installed: metrics are then
 * off, and nothing else changes. The ES module build keeps `import()`; the CommonJS build compiles it to `require()`.
 */
export async function loadOpenTelemetryApi(): Promise<OpenTelemetryApiModule | undefined> {
  try {
    return await import('@opentelemetry/api');
  } catch {
    return undefined;
  }
}
