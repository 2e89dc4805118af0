import type { CronOptions } from '@nestjs/schedule';
import type { JobLock } from './job-lock.interface.js';

/** `lock` on a job: `true` uses the module's `jobs.lock`; an object tunes the lease or brings its own store. */
export interface JobLockOptions {
  /** The store; default: the module's `jobs.lock`. */
  store?: JobLock;
  /**
   * How long a tick's lease lives, in ms (default 60,000). Longer than the worst clock skew between instances; a
   * run that outlives it extends it. An `@Interval`'s lease lives until the end of its slot plus `ttl`. With
   * `overlap: 'skip'` it is also the TTL of the job's running lease (extended while the run goes, released at its
   * end): an instance that dies mid-run holds the job up to `ttl`.
   */
  ttl?: number;
  /** How long one lock call may take before the tick is skipped, in ms (default 1,000). */
  timeout?: number;
}

/**
 * What a tick does while the previous run still goes: `'skip'` it (counted in `skipped`), `'allow'` a second run,
 * `'buffer-one'` (keep it, at most one, and run it when the current run ends; further ticks are skipped) or
 * `'cancel-previous'` (abort the running run's signal with `TaskAbortedError`, wait for it to end, bounded by the
 * job's `timeout`, then run).
 */
export type OverlapPolicy = 'skip' | 'allow' | 'buffer-one' | 'cancel-previous';

/** `catchUp` on `@Cron` and fixed-rate `@Interval`: ticks no instance ran, within `window` ms before now, run late. */
export interface CatchUpOptions {
  /** How far back missed ticks are caught up, in ms. Older ones never run. */
  window: number;
  /** `'last'` (default): one run for the latest missed tick. `'all'`: each missed tick once, oldest first. */
  mode?: 'last' | 'all';
}

/** Options every kind of job takes. */
export interface JobOptions {
  /** The job's name in `JobRegistry` and `SchedulerRegistry`. Default: `ClassName.methodName`. */
  name?: string;
  /** A tick while the previous run still goes (see `OverlapPolicy`). Default: the module's `jobs.overlap`. */
  overlap?: OverlapPolicy;
  /**
   * ms; the run's signal is aborted (`TaskTimeoutError`) and the run counts as failed. A method that ignores its
   * signal still counts as running (overlap guard, shutdown drain) until it ends. Default: `jobs.timeout`.
   */
  timeout?: number;
  /**
   * Pause the job after this many consecutive failed runs on this instance (`JobRegistry.get(name).paused`,
   * `pausedReason: 'failures'`); a successful run resets the count, `JobRegistry.resume(name)` too. Default: never.
   */
  pauseAfterFailures?: number;
}

/** Options of jobs that can run once per cluster. */
export interface LockableJobOptions extends JobOptions {
  /**
   * Run each tick on one instance only, through a `JobLock`: `true` for the module's `jobs.lock`. With
   * `overlap: 'skip'`, also never two runs at once across the instances. Not with `mode: 'fixed-delay'` (no tick
   * shared by the instances).
   */
  lock?: boolean | JobLockOptions;
  /**
   * Run ticks that no instance ran (the app was down, a stall) when they fall within `window` ms before now. Needs
   * `lock` (the lock store keeps each job's last run tick). Not with `mode: 'fixed-delay'`.
   */
  catchUp?: CatchUpOptions;
}

/** `@Cron` options: those of `@nestjs/schedule`'s `@Cron` (name, timeZone, utcOffset, disabled, ...) plus ours. */
export type CronJobOptions = CronOptions & LockableJobOptions;

/** `@Interval` options. */
export interface IntervalJobOptions extends LockableJobOptions {
  /**
   * `'fixed-rate'` (default): ticks at start + n x ms, whatever each run takes. `'fixed-delay'`: waits the full
   * interval after each run ends (Elixir's `Process.send_after`), so runs never overlap.
   */
  mode?: 'fixed-rate' | 'fixed-delay';
  /** ms before the first tick. Default: the interval. */
  initialDelay?: number;
}

/** `@Timeout` options. */
export type TimeoutJobOptions = JobOptions;
