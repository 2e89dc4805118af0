import type { Provider } from '@nestjs/common';
import { FanOut } from './fan-out.service.js';

/**
 * Providers of the fan-out pattern, registered by `ConcurrencyModule`. `FanOut` reads the validated options
 * (`CONCURRENCY_OPTIONS`) and the supervisor registry, so the raw `forRoot()` options are not needed here.
 */
export function createFanOutProviders(): Provider[] {
  return [FanOut];
}
