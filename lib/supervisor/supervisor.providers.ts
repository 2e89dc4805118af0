import type { Provider } from '@nestjs/common';
import { DEFAULT_SUPERVISOR, JOBS_SUPERVISOR } from '../concurrency.constants.js';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { SupervisorRegistry } from './supervisor.registry.js';
import { TaskSupervisor } from './task-supervisor.js';
import { getSupervisorToken, requestedSupervisorNames } from './utils/get-supervisor-token.util.js';

/**
 * Providers of the fire-and-forget pattern, registered by `ConcurrencyModule`. `options` holds the raw options of
 * `forRoot()` (undefined for `forRootAsync()`); validated options are injected with `CONCURRENCY_OPTIONS`.
 *
 * One provider per supervisor name: 'default', 'jobs', the names of `forRoot({ supervisors })`, and every name given
 * to `@InjectSupervisor()`/`getSupervisorToken()` so far (decorators run when their file is imported, before the
 * root module calls `forRoot`/`forRootAsync`; that is how `forRootAsync` knows names it cannot read yet).
 * `TaskSupervisor` itself is an alias of 'default', for injection by type.
 */
export function createSupervisorProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  const names = new Set([DEFAULT_SUPERVISOR, JOBS_SUPERVISOR, ...Object.keys(options?.supervisors ?? {})]);
  for (const name of requestedSupervisorNames()) names.add(name);
  return [
    SupervisorRegistry,
    ...[...names].map((name): Provider => ({
      provide: getSupervisorToken(name),
      useFactory: (registry: SupervisorRegistry) => registry.get(name),
      inject: [SupervisorRegistry],
    })),
    { provide: TaskSupervisor, useExisting: getSupervisorToken(DEFAULT_SUPERVISOR) },
  ];
}
