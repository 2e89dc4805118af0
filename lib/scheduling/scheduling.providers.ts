import type { DynamicModule, Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { JobRegistry } from './job.registry.js';
import { JobsExplorer } from './jobs.explorer.js';
import { JobsOrchestrator } from './jobs.orchestrator.js';

/**
 * Modules the scheduling pattern needs: `@nestjs/schedule` (its `SchedulerRegistry` sees our jobs, and users do not
 * import `ScheduleModule` themselves) and the discovery services the explorer uses.
 */
export function createSchedulingImports(): DynamicModule[] {
  return [ScheduleModule.forRoot(), { module: DiscoveryModule }];
}

/** Providers of the scheduling pattern, registered by `ConcurrencyModule`. */
export function createSchedulingProviders(): Provider[] {
  return [JobRegistry, JobsOrchestrator, JobsExplorer];
}
