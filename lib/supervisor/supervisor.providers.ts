import type { Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';

/**
 * Providers of the fire-and-forget pattern, registered by `ConcurrencyModule`. `options` holds the raw options of
 * `forRoot()` (undefined for `forRootAsync()`); validated options are injected with `CONCURRENCY_OPTIONS`.
 */
export function createSupervisorProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [];
}
