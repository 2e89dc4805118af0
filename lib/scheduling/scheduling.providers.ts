import type { DynamicModule, Provider } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';

/** Modules the scheduling pattern needs: `@nestjs/schedule`, so users do not import `ScheduleModule` themselves. */
export function createSchedulingImports(): DynamicModule[] {
  return [ScheduleModule.forRoot()];
}

/** Providers of the scheduling pattern, registered by `ConcurrencyModule`. */
export function createSchedulingProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [];
}
