import type { Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { FanOut } from './fan-out.service.js';

/**
 * Providers of the fan-out pattern, registered by `ConcurrencyModule`. `FanOut` reads the validated options
 * (`CONCURRENCY_OPTIONS`), so `options` (the raw `forRoot()` options) is not needed here.
 */
export function createFanOutProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [FanOut];
}
