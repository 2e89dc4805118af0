import type { Provider } from '@nestjs/common';
import { ConcurrencyMetrics } from './concurrency-metrics.js';

/** @internal OpenTelemetry metrics (idle without `@opentelemetry/api` or a registered SDK). */
export function createObservabilityProviders(): Provider[] {
  return [ConcurrencyMetrics];
}
