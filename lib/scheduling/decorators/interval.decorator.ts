import { SetMetadata } from '@nestjs/common';
import type { IntervalJobOptions } from '../interfaces/job-options.interface.js';
import type { JobMetadata } from '../interfaces/job-metadata.interface.js';
import { JOB_METADATA } from '../scheduling.constants.js';

/**
 * Runs the method every `ms` milliseconds, supervised. Fixed rate by default (no drift; a tick during a run is
 * skipped unless `overlap: 'allow'`), or `mode: 'fixed-delay'`. Also `@Interval(name, ms)` as in `@nestjs/schedule`.
 *
 * @publicApi
 */
export function Interval(ms: number, options?: IntervalJobOptions): MethodDecorator;
export function Interval(name: string, ms: number): MethodDecorator;
export function Interval(msOrName: number | string, msOrOptions?: number | IntervalJobOptions): MethodDecorator {
  const [ms, options] =
    typeof msOrName === 'string' ? [msOrOptions, { name: msOrName }] : [msOrName, (msOrOptions ?? {}) as object];
  return SetMetadata<string, JobMetadata>(JOB_METADATA, { kind: 'interval', ms, options });
}
