import { SetMetadata } from '@nestjs/common';
import type { TimeoutJobOptions } from '../interfaces/job-options.interface.js';
import type { JobMetadata } from '../interfaces/job-metadata.interface.js';
import { JOB_METADATA } from '../scheduling.constants.js';

/**
 * Runs the method once, `ms` milliseconds after the application has started, supervised. Also
 * `@Timeout(name, ms)` as in `@nestjs/schedule`.
 *
 * @publicApi
 */
export function Timeout(ms: number, options?: TimeoutJobOptions): MethodDecorator;
export function Timeout(name: string, ms: number): MethodDecorator;
export function Timeout(msOrName: number | string, msOrOptions?: number | TimeoutJobOptions): MethodDecorator {
  const [ms, options] =
    typeof msOrName === 'string' ? [msOrOptions, { name: msOrName }] : [msOrName, (msOrOptions ?? {}) as object];
  return SetMetadata<string, JobMetadata>(JOB_METADATA, { kind: 'timeout', ms, options });
}
