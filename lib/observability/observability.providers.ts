import type { Provider, Type } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { ConcurrencyOptionsError } from '../errors/concurrency-options.error.js';
import { ConcurrencyHealthIndicator } from './concurrency-health.indicator.js';
import { ConcurrencyMetrics } from './concurrency-metrics.js';
import { createDashboardController } from './dashboard/dashboard.controller.js';
import { dashboardPath } from './dashboard/dashboard-path.js';
import { DashboardService } from './dashboard/dashboard.service.js';
import type { DashboardOptions } from './interfaces/dashboard-options.interface.js';
import { DASHBOARD_IN_FACTORY } from './observability.messages.js';
import { ConcurrencyTracing } from './tracing/concurrency-tracing.js';

/**
 * @internal OpenTelemetry metrics (idle without `@opentelemetry/api` or a registered SDK), the health indicator, and
 * the dashboard's data when it is configured.
 */
export function createObservabilityProviders(dashboard: boolean): Provider[] {
  return [ConcurrencyMetrics, ConcurrencyHealthIndicator, ConcurrencyTracing, ...(dashboard ? [DashboardService] : [])];
}

/**
 * @internal The dashboard's controller, when `dashboard` is given. Read loosely here (the module is being defined);
 * the options are validated at boot, where a bad or missing value fails with the option named.
 */
export function createDashboardControllers(dashboard: DashboardOptions | undefined): Type[] {
  if (dashboard === undefined || dashboard === null || typeof dashboard !== 'object') return [];
  const guard = typeof dashboard.guard === 'function' ? dashboard.guard : false;
  return [createDashboardController(dashboardPath(dashboard.path), guard)];
}

/** @internal forRootAsync: the factory's options plus the `dashboard` given next to it (never from the factory). */
export function withDashboard(options: unknown, dashboard: DashboardOptions | undefined): ConcurrencyModuleOptions {
  const raw = (options ?? {}) as ConcurrencyModuleOptions;
  if (typeof raw === 'object' && raw !== null && raw.dashboard !== undefined) {
    throw new ConcurrencyOptionsError('dashboard', DASHBOARD_IN_FACTORY);
  }
  return dashboard === undefined ? raw : { ...raw, dashboard };
}
