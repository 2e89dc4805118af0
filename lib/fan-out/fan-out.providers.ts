import type { Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';

/** Providers of the fan-out pattern, registered by `ConcurrencyModule`. */
export function createFanOutProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [];
}
