import type { CronJobOptions, IntervalJobOptions, TimeoutJobOptions } from './job-options.interface.js';

/**
 * What a decorator stores on the method. Internal. `givenName`: `options.name` of the `(name, ms, options)` shape,
 * kept to fail boot when it disagrees with the name argument.
 */
export type JobMetadata =
  | { kind: 'cron'; cronTime: unknown; options: CronJobOptions }
  | { kind: 'interval'; ms: unknown; options: IntervalJobOptions; givenName?: unknown }
  | { kind: 'timeout'; ms: unknown; options: TimeoutJobOptions; givenName?: unknown };
