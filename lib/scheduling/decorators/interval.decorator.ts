import { SetMetadata } from '@nestjs/common';
import type { IntervalJobOptions } from '../interfaces/job-options.interface.js';
import type { JobMetadata } from '../interfaces/job-metadata.interface.js';
import { JOB_METADATA } from '../scheduling.constants.js';

/**
 * Runs the method every `ms` milliseconds, supervised. Fixed rate by default (no drift; a tick during a run is
 * skipped unless `overlap: 'allow'`), or `mode: 'fixed-delay'`. Also `@Interval(name, ms)` as in `@nestjs/schedule`,
 * and `@Interval(name, ms, options)`: the name argument is the job's name, the options apply as with `@Interval(ms, options)`.
 *
 * @publicApi
 */
export function Interval(ms: number, options?: IntervalJobOptions): MethodDecorator;
export function Interval(name: string, ms: number, options?: IntervalJobOptions): MethodDecorator;
export function Interval(
  msOrName: number | string,
  msOrOptions?: number | IntervalJobOptions,
  named?: IntervalJobOptions,
): MethodDecorator {
  const meta: JobMetadata =
    typeof msOrName === 'string'
      ? { kind: 'interval', ms: msOrOptions, options: { ...named, name: msOrName }, givenName: named?.name }
      : { kind: 'interval', ms: msOrName, options: (msOrOptions ?? {}) as IntervalJobOptions };
  return SetMetadata<string, JobMetadata>(JOB_METADATA, meta);
}
