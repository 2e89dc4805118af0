import { type ConfigurableModuleAsyncOptions, type DynamicModule, Module, type Provider } from '@nestjs/common';
import { createCachingProviders } from './caching/caching.providers.js';
import { CONCURRENCY_OPTIONS } from './concurrency.constants.js';
import { ConfigurableModuleClass, OPTIONS_TYPE, RAW_OPTIONS_TOKEN } from './concurrency.module-definition.js';
import { resolveConcurrencyOptions } from './concurrency-options.validator.js';
import { createDurableProviders } from './durable/durable.providers.js';
import { createFanOutProviders } from './fan-out/fan-out.providers.js';
import type { ConcurrencyModuleOptions } from './interfaces/concurrency-module-options.interface.js';
import { createSchedulingImports, createSchedulingProviders } from './scheduling/scheduling.providers.js';
import { createSupervisorProviders } from './supervisor/supervisor.providers.js';
import {
  createDashboardControllers,
  createObservabilityProviders,
  withDashboard,
} from './observability/observability.providers.js';
import type { DashboardOptions } from './observability/interfaces/dashboard-options.interface.js';

/**
 * What `ConcurrencyModule.forRootAsync()` takes: `imports`, `inject` and `useFactory` (or `useClass` /
 * `useExisting` with a `ConcurrencyOptionsFactory`), plus `dashboard`, which is fixed when the module is defined.
 */
export type ConcurrencyModuleAsyncOptions = ConfigurableModuleAsyncOptions<
  ConcurrencyModuleOptions,
  'createConcurrencyOptions'
> & { dashboard?: DashboardOptions };

/**
 * One line gives an application the four patterns: supervised background tasks, fan-out/fan-in, supervised
 * scheduled jobs and a single-flight response cache. Global; registers `@nestjs/schedule` and
 * `@nestjs/cache-manager` itself.
 */
@Module({})
export class ConcurrencyModule extends ConfigurableModuleClass {
  /** The module with these options (all optional: in-memory defaults). */
  static forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    return ConcurrencyModule.assemble(super.forRoot(options), options);
  }

  /**
   * Options from a factory. `dashboard` goes here, next to `useFactory`, not in what the factory returns: its routes
   * are fixed when the module is defined.
   */
  static forRootAsync(options: ConcurrencyModuleAsyncOptions): DynamicModule {
    const { dashboard, ...rest } = options;
    return ConcurrencyModule.assemble(super.forRootAsync(rest), undefined, dashboard);
  }

  private static assemble(
    base: DynamicModule,
    raw: ConcurrencyModuleOptions | undefined,
    asyncDashboard?: DashboardOptions,
  ): DynamicModule {
    const dashboard = raw === undefined ? asyncDashboard : raw.dashboard;
    const resolved: Provider = {
      provide: CONCURRENCY_OPTIONS,
      inject: [RAW_OPTIONS_TOKEN],
      useFactory:
        raw === undefined
          ? (options: unknown) => resolveConcurrencyOptions(withDashboard(options, asyncDashboard))
          : resolveConcurrencyOptions,
    };
    const providers = [
      resolved,
      ...createSupervisorProviders(raw),
      ...createFanOutProviders(),
      ...createSchedulingProviders(),
      ...createCachingProviders(),
      // Durable tasks only when asked for (forRootAsync: not known yet, idle without it): no Redis, no bullmq else.
      ...createDurableProviders(raw === undefined || raw.durable !== undefined),
      ...createObservabilityProviders(dashboard !== undefined),
    ];
    const imports = createSchedulingImports();
    return {
      ...base,
      global: true,
      imports: [...(base.imports ?? []), ...imports],
      providers: [...(base.providers ?? []), ...providers],
      controllers: [...(base.controllers ?? []), ...createDashboardControllers(dashboard)],
      exports: [...(base.exports ?? []), ...providers, ...imports],
    };
  }
}
