import type { JobControlChange, JobControlState, JobRun } from './job-run.interface.js';

/**
 * A distributed lock for job ticks: one instance of a cluster wins each tick.
 *
 * The other methods are optional: a store that has them also holds what the cluster shares about its jobs (run
 * history, pause state, runtime schedules). A `JobLock` with `acquire` only keeps working: history, `pause()`,
 * `resume()` and `reschedule()` then stay on each instance.
 */
export interface JobLock {
  /** Take the lease for `key` for `ttlMs`; resolves `null` when another owner holds it. */
  acquire(key: string, ttlMs: number): Promise<JobLease | null>;
  /**
   * Whether a lease on `key` is held now. Needed by `overlap: 'cancel-previous'` with a lock: the running instance
   * watches for another instance's request to cancel its run. With `'buffer-one'` and `'cancel-previous'` a tick that
   * finds the job's running lease free also asks whether a tick is kept for that run, and lets it go first.
   * `RedisJobLock` and `InMemoryJobLock` have it.
   */
  peek?(key: string): Promise<boolean>;
  /**
   * The last tick (ms since the epoch) recorded for `job`, or `null`. Needed by `catchUp`. `RedisJobLock` keeps it in
   * Redis (it survives restarts); `InMemoryJobLock` in memory (it covers stalls, not restarts).
   */
  lastTick?(job: string): Promise<number | null>;
  /** Records `at` as `job`'s last tick unless a later one is recorded already. Needed by `catchUp`. */
  recordTick?(job: string, at: number): Promise<void>;
  /**
   * The catch-up in progress for `job`: the ticks after `done` up to `until` (ms since the epoch) are still owed, or
   * `null`. With `recordCatchUp`, optional: with both, when the instance catching up dies, the next one to catch up
   * runs the ticks it had left (the last-tick watermark alone has moved past them by then). `RedisJobLock` and
   * `InMemoryJobLock` have them.
   */
  catchUpState?(job: string): Promise<CatchUpState | null>;
  /** Moves `done` and `until` of `job`'s catch-up forward (each only if later than the one stored). */
  recordCatchUp?(job: string, state: Partial<CatchUpState>): Promise<void>;
  /** Adds a finished run to the job's history and keeps only the newest `keep` runs (atomically). */
  addRun?(job: string, run: JobRun, keep: number): Promise<void>;
  /** The job's newest runs, newest first, at most `limit`. */
  runs?(job: string, limit: number): Promise<JobRun[]>;
  /**
   * Stores a change of the job's shared state and bumps the state's version. With `control`. `deadline` (epoch ms,
   * given by `reschedule()`): a write that reaches the store after it must change nothing and reject (the caller was
   * told it failed). Resolves `false` when a `late` pause state was not stored because a newer one is (see
   * `JobControlChange.late`); anything else means stored.
   */
  setControl?(job: string, change: JobControlChange, deadline?: number): Promise<void | boolean>;
  /** Every job's shared state, or `null` when its version is still `known`. With `setControl`. */
  control?(known: number | null): Promise<JobControlState | null>;
}

/** What a catch-up still owes: the ticks after `done`, up to and including `until` (ms since the epoch). */
export interface CatchUpState {
  done: number;
  until: number;
}

/** A held lease. */
export interface JobLease {
  /** A fencing token: increases with every lease the store grants. */
  readonly token: number;
  /** Gives the lease up, only if this owner still holds it (compare-and-set). */
  release(): Promise<void>;
  /** Extends the lease, only if this owner still holds it; resolves `false` when it was lost. */
  extend?(ttlMs: number): Promise<boolean>;
}
