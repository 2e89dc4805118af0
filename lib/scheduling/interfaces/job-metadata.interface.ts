import type { CronJobOptions, IntervalJobOptions, TimeoutJobOptions } from './job-options.interface.js';

/** What a decorator stores on the method. Internal. */
export type JobMetadata =
  | { kind: 'cron'; cronTime: unknown; options: CronJobOptions }
  | { kind: 'interval'; ms: unknown; options: IntervalJobOptions }
  | { kind: 'timeout'; ms: unknown; options: TimeoutJobOptions };
