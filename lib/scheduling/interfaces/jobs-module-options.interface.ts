import type { JobLock } from './job-lock.interface.js';
import type { OverlapPolicy } from './job-options.interface.js';

/** Module-wide defaults for scheduled jobs (`forRoot({ jobs: { ... } })`). */
export interface JobsModuleOptions {
  /** The lock used by jobs declared with `lock: true` (e.g. `new RedisJobLock(redis)`). */
  lock?: JobLock;
  /**
   * What a tick does while the previous run still goes: `'skip'` (default), `'allow'`, `'buffer-one'` or
   * `'cancel-previous'` (see `OverlapPolicy`).
   */
  overlap?: OverlapPolicy;
  /** Default run timeout in ms: the run's signal is aborted and the run counts as failed. Default: none. */
  timeout?: number;
  /**
   * `false`: this instance runs no `@Cron` job (e.g. an API-only node). The jobs are still validated at boot, but not
   * mounted: they are neither in `SchedulerRegistry` nor in `JobRegistry`. `ScheduleModule.forRoot({ cronJobs })`.
   * Default `true`.
   */
  cronJobs?: boolean;
  /** `false`: this instance runs no `@Interval` job (as `cronJobs`). Default `true`. */
  intervals?: boolean;
  /** `false`: this instance runs no `@Timeout` job (as `cronJobs`). Default `true`. */
  timeouts?: boolean;
}
