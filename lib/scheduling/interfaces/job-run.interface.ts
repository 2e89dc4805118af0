/** One finished run of a job, as `JobRegistry.history()` returns it (newest first). */
export interface JobRun {
  /** The tick the run belongs to (for `trigger()`, the time of the call). */
  scheduledAt: Date;
  /** When the method was called. */
  startedAt: Date;
  /** How long it ran; for `'timeout'`, until the timeout fired. */
  durationMs: number;
  outcome: 'completed' | 'failed' | 'timeout';
  /** The error's message (cut at 500 characters), for `'failed'` and `'timeout'`. */
  error?: string;
  /** The instance that ran it: `jobs.instance` (default `hostname:pid`). */
  instance: string;
}

/** A change of a job's state shared by the cluster, stored by a `JobLock` that implements `setControl`. */
export interface JobControlChange {
  paused?: boolean;
  /**
   * The schedule set by `JobRegistry.reschedule()` (a cron expression or ms), with `base`: the schedule the job had
   * from its configuration on the instance that set it.
   */
  schedule?: { value: string | number; base: string | number };
}

/** What `JobLock.control()` returns: every job's stored state and the version of that state. */
export interface JobControlState {
  version: number;
  jobs: Map<string, JobControlChange>;
}
