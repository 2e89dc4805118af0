/** A snapshot of one job, returned by `JobRegistry.list()` and `get()`. */
export interface JobInfo {
  name: string;
  kind: 'cron' | 'interval' | 'timeout';
  /** The cron expression (or date), or the interval/timeout in ms. */
  schedule: string | number;
  /** Runs in progress on this instance (more than 1 only with `overlap: 'allow'`). */
  running: number;
  /** Runs started on this instance. */
  runs: number;
  /** Runs that threw, rejected or timed out. */
  failures: number;
  /**
   * Ticks not run here: still running (`overlap: 'skip'`; with a lock, also a run on another instance), tick held by
   * another instance, paused while the tick waited for its lock, or lock store failure.
   */
  skipped: number;
  /** Ticks skipped because the lock store failed or timed out (included in `skipped`). */
  lockFailures: number;
  lastRunAt: Date | null;
  lastDurationMs: number | null;
  /** The error of the last run that failed; kept after later runs succeed (compare `lastErrorAt` with `lastRunAt`). */
  lastError: unknown;
  /** When that run failed (or timed out); `null` if no run has failed. */
  lastErrorAt: Date | null;
  /** When the timer fires next; `null` when paused, stopped or a `@Timeout` that has fired. */
  nextRunAt: Date | null;
  paused: boolean;
  /**
   * Why the job is paused: `'failures'` when it paused itself (`pauseAfterFailures`), `'manual'` otherwise (`pause()`,
   * `disabled`, `SchedulerRegistry`); `null` while it is not paused.
   */
  pausedReason: 'failures' | 'manual' | null;
  /** Failed runs on this instance since the last successful one (reset by `resume()`). */
  consecutiveFailures: number;
}
