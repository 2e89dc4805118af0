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
  /**
   * Runs kept per job for `JobRegistry.history()` (default 50; 0 keeps none). With a lock store that keeps history
   * (`RedisJobLock`), the cluster's list is capped at this.
   */
  history?: number;
  /**
   * Schedules from configuration, by job name: replaces a decorated job's schedule at boot (e.g. from a
   * `ConfigService` in `forRootAsync`). An unknown job name or an invalid value fails the boot, naming job and option.
   */
  overrides?: Record<string, JobOverride>;
  /** This instance's name in the run history. Default `hostname:pid`. */
  instance?: string;
}

/** A job's schedule from configuration (`jobs.overrides[name]`). */
export interface JobOverride {
  /** A `@Cron` job's expression. */
  cron?: string;
  /** A `@Cron` job's IANA time zone (e.g. `'Europe/Paris'`). */
  timeZone?: string;
  /** An `@Interval` job's period in ms. */
  interval?: number;
  /** `true`: the job is mounted paused on this instance (`JobRegistry.resume()` starts it). */
  disabled?: boolean;
}
