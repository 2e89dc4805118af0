import type { Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { FanOut } from './fan-out.service.js';

/**
 * Providers of the fan-out pattern, registered by `ConcurrencyModule`. `FanOut` reads the validated options
 * (`CONCURRENCY_OPTIONS`) and the `'default'` supervisor, so the raw `forRoot()` options are not needed here.
 */
export function createFanOutProviders(_options: ConcurrencyModuleOptions | undefined): Provider[] {
  return [FanOut];
}
