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
  /**
   * With `paused`: when `pause()`/`resume()` was called (epoch ms, the calling instance's clock). The store keeps the
   * newest call's time per job.
   */
  pausedAt?: number;
  /**
   * With `paused` and `pausedAt`: this write is late (an earlier try failed, e.g. the store was down). The store
   * changes nothing and resolves `false` when the job's pause state was stored from a call made after `pausedAt`
   * (another instance's later `pause()`/`resume()` wins over a late write of an older one).
   */
  late?: boolean;
  /**
   * With `paused` and `pausedAt`: a time (epoch ms) after which the store treats this write as `late` when it only
   * runs it then (it was queued while the store was away, and the caller gave up on it).
   */
  lateAfter?: number;
}

/** What `JobLock.control()` returns: every job's stored state and the version of that state. */
export interface JobControlState {
  version: number;
  jobs: Map<string, JobControlChange>;
}
