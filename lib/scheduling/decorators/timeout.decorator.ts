import { SetMetadata } from '@nestjs/common';
import type { TimeoutJobOptions } from '../interfaces/job-options.interface.js';
import type { JobMetadata } from '../interfaces/job-metadata.interface.js';
import { JOB_METADATA } from '../scheduling.constants.js';

/**
 * Runs the method once, `ms` milliseconds after the application has started, supervised. Also
 * `@Timeout(name, ms)` as in `@nestjs/schedule`, and `@Timeout(name, ms, options)`.
 *
 * @publicApi
 */
export function Timeout(ms: number, options?: TimeoutJobOptions): MethodDecorator;
export function Timeout(name: string, ms: number, options?: TimeoutJobOptions): MethodDecorator;
export function Timeout(
  msOrName: number | string,
  msOrOptions?: number | TimeoutJobOptions,
  named?: TimeoutJobOptions,
): MethodDecorator {
  const meta: JobMetadata =
    typeof msOrName === 'string'
      ? { kind: 'timeout', ms: msOrOptions, options: { ...named, name: msOrName }, givenName: named?.name }
      : { kind: 'timeout', ms: msOrName, options: (msOrOptions ?? {}) as TimeoutJobOptions };
  return SetMetadata<string, JobMetadata>(JOB_METADATA, meta);
}
