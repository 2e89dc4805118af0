import type { Provider } from '@nestjs/common';
import { ConcurrencyHealthIndicator } from './concurrency-health.indicator.js';
import { ConcurrencyMetrics } from './concurrency-metrics.js';

/** @internal OpenTelemetry metrics (idle without `@opentelemetry/api` or a registered SDK), the health indicator. */
export function createObservabilityProviders(): Provider[] {
  return [ConcurrencyMetrics, ConcurrencyHealthIndicator];
}
